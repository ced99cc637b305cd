"""``ciaosr prepare-benchmark``: make the MATLAB-bicubic LR folders of a test set
(the work is ``ciaosr.data.prepare_benchmark.prepare``). ``<out>`` defaults to the
folder above ``--hr`` (so ``Set14/HR`` gets ``Set14/LR_bicubic``); existing files are
kept unless ``--overwrite``.
"""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "prepare-benchmark", help="write MATLAB-bicubic LR images (LR_bicubic/X<s>/<name>x<s>.png) for a test set",
        description="Make the EDSR-layout low-resolution folders of a test set with a MATLAB-exact bicubic resize.")
    p.add_argument("--hr", required=True, metavar="DIR", help="folder of HR images")
    p.add_argument("--scales", nargs="+", type=int, default=[2, 3, 4], metavar="S",
                   help="integer downscaling factors (default: 2 3 4)")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="where LR_bicubic/ goes (default: the folder above --hr)")
    p.add_argument("--overwrite", action="store_true", help="replace LR files that exist already")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data.prepare_benchmark import prepare

    res = prepare(Path(args.hr), args.scales, Path(args.out) if args.out else None, args.overwrite)
    msg = f"wrote {res['written']} LR image(s)"
    if res["skipped"]:
        msg += f", kept {res['skipped']} existing (use --overwrite to replace)"
    print(f"{msg} in {', '.join(res['folders'])}")
    return 0

"""``ciaosr data list | fetch NAME | prepare NAME | verify NAME``: the data sets of the
paper by command (the work is ``ciaosr.data.sets``). ``--root`` is the data root the
configs' ``data_root`` and ``ciaosr eval --data-root`` point at; ``ciaosr data list``
shows the sets, their sources and what is under the root already. ``ciaosr data prepare
--hr DIR`` makes the MATLAB-bicubic LR folders of any folder of HR images
(``ciaosr prepare-benchmark`` is its alias).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..options import DATA_ROOT_VARIABLE, default_data_root
from .command import Command



def _root_arg(p) -> None:
    p.add_argument("--root", metavar="DIR", default=default_data_root(),
                   help=f"the data root: one folder per set (default: ${DATA_ROOT_VARIABLE}, else ./datasets)")


def _quiet_arg(p) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def hr_args(p, required: bool = False) -> None:
    """``--hr DIR`` and ``--out DIR``: the options of ``prepare --hr`` and of its alias ``prepare-benchmark``."""
    p.add_argument("--hr", required=required, metavar="DIR",
                   help="a folder of HR images to make LR_bicubic/X<s>/<name>x<s>.png for (instead of NAME)")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="with --hr: where LR_bicubic/ goes (default: the folder above --hr)")


def scales_arg(p) -> None:
    p.add_argument("--scales", nargs="+", type=int, default=[2, 3, 4], metavar="S",
                   help="integer downscaling factors of the LR made (default: 2 3 4)")


def overwrite_arg(p) -> None:
    p.add_argument("--overwrite", action="store_true", help="replace files made before")


def _list_arguments(q) -> None:
    _root_arg(q)
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _fetch_arguments(q) -> None:
    q.add_argument("name", metavar="NAME", help="a set (ciaosr data list)")
    _root_arg(q)
    q.add_argument("--mirror", metavar="URL", help="fetch from this address instead: the same file names under it")
    q.add_argument("--keep-archives", action="store_true", help="keep the downloaded archives in ROOT/.downloads")
    q.add_argument("--overwrite", action="store_true", help="replace files that exist already")
    q.add_argument("--timeout", type=float, default=60.0, metavar="S",
                   help="seconds without data before a try counts as failed (default 60)")
    q.add_argument("--retries", type=int, default=5, metavar="N", help="tries after the first (default 5)")
    _quiet_arg(q)


def _prepare_arguments(q) -> None:
    q.add_argument("name", metavar="NAME", nargs="?", help="a set (ciaosr data list)")
    hr_args(q)
    _root_arg(q)
    q.add_argument("--from", dest="source", metavar="DIR", help="Manga109: the folder of your copy (one image per title)")
    scales_arg(q)
    q.add_argument("--sub-images", action="store_true",
                   help="training sets: also write crops for fast reads (HR_sub<size>)")
    q.add_argument("--sub-size", type=int, default=480, metavar="PX", help="sub-image size (default 480)")
    q.add_argument("--sub-step", type=int, default=240, metavar="PX", help="sub-image step (default 240)")
    overwrite_arg(q)
    _quiet_arg(q)


def _verify_arguments(q) -> None:
    q.add_argument("name", metavar="NAME", help="a set (ciaosr data list)")
    _root_arg(q)
    q.add_argument("--json", action="store_true", help="print the report as JSON")
    _quiet_arg(q)


def _progress(args) -> bool | None:
    return False if args.quiet else None


def _log(line: str) -> None:
    print(line, file=sys.stderr)


def run_list(args) -> int:
    from ..data.sets.catalog import all_datasets
    from ..data.sets.layout import is_complete

    root = Path(args.root)
    rows = []
    for ds in all_datasets():
        present = root.is_dir() and is_complete(ds, root)
        rows.append({"name": ds.name, "about": ds.about, "images": ds.images, "folders": list(ds.set_folders),
                     "source": ds.base_url, "downloads": [d.path for d in ds.downloads][:4]
                     + (["..."] if len(ds.downloads) > 4 else []),
                     "checksums": ds.checksum_source or None, "size": ds.size_note or None,
                     "used_for": ds.used_for, "licence": ds.licence, "complete_under_root": present})
    if args.json:
        print(json.dumps({"root": str(root), "datasets": rows}, indent=2))
        return 0
    width = max(len(r["name"]) for r in rows)
    print(f"data root: {root}\n")
    print(f"{'set':<{width}}  {'images':>6}  {'there':<8}  used for")
    for r in rows:
        print(f"{r['name']:<{width}}  {r['images']:>6}  {'complete' if r['complete_under_root'] else '-':<8}  "
              f"{r['used_for']}")
    print()
    for r in rows:
        if r["source"]:
            src = f"from {r['source']}" + (f" ({', '.join(r['downloads'])})" if r["downloads"] else "")
        else:
            src = f"not downloadable: prepared from your copy with ciaosr data prepare {r['name']} --from DIR"
        print(f"{r['name']}: {r['about']}.\n  {src}" + (f"; {r['size']}" if r["size"] else "")
              + f".\n  Licence: {r['licence']}.")
    return 0


def run_fetch(args) -> int:
    from ..data.sets.catalog import find_dataset
    from ..data.sets.fetch import fetch
    from ..errors import CiaosrError

    ds = find_dataset(args.name)
    if args.retries < 0 or args.timeout <= 0:
        raise CiaosrError("--retries must be 0 or more and --timeout above 0")
    counts = fetch(ds, args.root, mirror=args.mirror, keep_archives=args.keep_archives, overwrite=args.overwrite,
                   timeout=args.timeout, retries=args.retries, progress=_progress(args), log=_log)
    print(f"{ds.name}: {counts['downloaded']} download(s), {counts['written']} file(s) written, "
          f"{counts['skipped']} already there, {counts['kept']} existing kept, under {args.root}")
    return 0


def run_prepare(args) -> int:
    from ..data.sets.catalog import find_dataset
    from ..data.sets.prepare import prepare
    from ..errors import CiaosrError

    if args.hr is not None:
        if args.name is not None:
            raise CiaosrError("give a set NAME or --hr DIR, not both")
        for option, given in (("--from", args.source), ("--sub-images", args.sub_images)):
            if given:
                raise CiaosrError(f"{option} is for a set NAME, not --hr (which makes the LR of a folder of HR images)")
        return run_prepare_hr(args, _progress(args))
    if args.name is None:
        raise CiaosrError("give a set NAME (ciaosr data list) or --hr DIR (a folder of HR images)")
    if args.out is not None:
        raise CiaosrError("--out goes with --hr; a set NAME is prepared under --root")
    ds = find_dataset(args.name)
    res = prepare(ds, args.root, source=args.source, scales=args.scales, sub_images=args.sub_images,
                  sub_size=args.sub_size, sub_step=args.sub_step, overwrite=args.overwrite,
                  progress=_progress(args), log=_log)
    print(f"{ds.name}: {res['written']} file(s) written; manifest: {', '.join(res['manifests'])}")
    return 0


def run_prepare_hr(args, progress: bool | None = None) -> int:
    """``--hr DIR``: the LR folders of a folder of HR images (``data.sets.prepare.make_lr``)."""
    from ..data.sets.prepare import make_lr

    res = make_lr(Path(args.hr), args.scales, Path(args.out) if args.out else None, args.overwrite, progress)
    msg = f"wrote {res['written']} LR image(s)"
    if res["skipped"]:
        msg += f", kept {res['skipped']} existing (use --overwrite to replace)"
    print(f"{msg} in {', '.join(res['folders'])}")
    return 0


def run_verify(args) -> int:
    from ..data.sets.catalog import find_dataset
    from ..data.sets.verify import verify

    ds = find_dataset(args.name)
    rep = verify(ds, args.root, progress=_progress(args))
    if args.json:
        print(json.dumps({"dataset": rep.dataset, "ok": rep.ok, "folders": rep.folders, "hashed": rep.hashed,
                          "problems": rep.problems, "notes": rep.notes}, indent=2))
    else:
        for line in rep.problems:
            print(f"problem: {line}")
        for line in rep.notes:
            print(f"note: {line}")
        found = sum(rep.folders.values())
        print(f"{ds.name}: {'ok' if rep.ok else f'{len(rep.problems)} problem(s)'}; {found} image(s) in "
              f"{len(rep.folders)} folder(s) under {args.root}, {rep.hashed} checked against a known SHA-256")
    return 0 if rep.ok else 1


COMMAND = Command(
    "data", help="list, download, prepare and check the data sets (DIV2K, benchmarks, ...)",
    description="The paper's data sets by command: list them, fetch them (resumable, checked "
                "downloads), prepare the layout ciaosr eval and the configs read, verify them.",
    actions=(
        Command("list", help="the known sets, their sources and sizes, and what the root holds",
                arguments=_list_arguments, run=run_list),
        Command("fetch", help="download a set and unpack it under the root",
                description="Download a set's files (resumed with HTTP Range, checked against the known "
                            "checksum, unpacked safely) into the root. Archives are removed once unpacked.",
                arguments=_fetch_arguments, run=run_fetch),
        Command("prepare", help="make the layout ciaosr eval and the configs read, with a manifest",
                description="Test sets: MATLAB-exact bicubic LR_bicubic/X<s> and GTmod12. Training sets: "
                            "optional sub-images. Manga109: copied from --from DIR first. Every set "
                            "folder gets MANIFEST.json (sizes and SHA-256 of its files). With --hr DIR "
                            "instead of NAME: the LR_bicubic/X<s> folders of any folder of HR images.",
                arguments=_prepare_arguments, run=run_prepare),
        Command("verify", help="check a set: file counts, every image opens, sizes and known SHA-256",
                description="Check a set under the root: image counts (naming missing files), that every "
                            "image decodes, image sizes and SHA-256 where known, and the files its "
                            "MANIFEST.json lists. Exit status 1 when something is wrong.",
                arguments=_verify_arguments, run=run_verify),
    ))

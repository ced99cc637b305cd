"""``ciaosr eval``: PSNR / SSIM of a model on benchmark sets, as the papers measure them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import CiaosrError

DEFAULT_DATASETS = ["Set5", "Set14", "B100", "Urban100"]
DEFAULT_SCALES = [2.0, 3.0, 4.0]


def register(sub) -> None:
    from ..runtime import PRECISIONS

    p = sub.add_parser(
        "eval", help="benchmark a model (PSNR/SSIM) under the LIIF or mmediting protocol",
        description="Evaluate a model on benchmark sets (<data-root>/<Set>/HR, optional "
                    "<Set>/LR_bicubic/X<s>) and print a markdown table of PSNR / SSIM.")
    p.add_argument("--model", "-m", default=None,
                   help="model name with shipped weights, checkpoint file, or 'bicubic' (default: the default model)")
    p.add_argument("--data-root", required=True, metavar="DIR",
                   help="folder holding one sub-folder per test set")
    p.add_argument("--datasets", nargs="+", default=DEFAULT_DATASETS, metavar="SET",
                   help="test sets (sub-folders of --data-root); default: %(default)s")
    p.add_argument("--scales", nargs="+", type=float, default=DEFAULT_SCALES, metavar="S",
                   help="upscaling factors; default: 2 3 4")
    p.add_argument("--protocol", choices=["liif", "mmedit"], default="liif",
                   help="liif (default; LIIF/LTE papers) or mmedit (official CiaoSR code)")
    p.add_argument("--metrics", nargs="+", choices=["psnr", "ssim"], default=["psnr", "ssim"])
    p.add_argument("--steps", default=None, metavar="S1,S2,...",
                   help="multi-step synthesis, e.g. 2,4,12: upsample x2, then x4, then x12 from the previous output")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="model precision: fp32 (default), bf16 (autocast), fp16 (GPU only)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads (default: PyTorch's, one per core); 1 is faster on a CPU other jobs share")
    p.add_argument("--chunk", type=int, default=30000, help="queries decoded at once (default 30000)")
    p.add_argument("--json", metavar="FILE", default=None,
                   help="also write the results, per image, as JSON (its folder must be writable; checked first)")
    p.add_argument("--save-images", metavar="DIR", default=None,
                   help="write the outputs as PNG to DIR/<set>/X<s>/<name>.png")
    p.set_defaults(func=run)


def _check_json_path(path: Path) -> None:
    """Refuse, before any work, a --json path the results could not be written to: a
    folder, a path below a file, or a folder that takes no new files."""
    from ..atomic import check_writable_folder

    if path.is_dir():
        raise CiaosrError(f"--json {path}: is a folder; give a file name (e.g. {path / 'results.json'})")
    folder = path.parent
    while not folder.exists():  # the folders to be made: the first that exists must take them
        folder = folder.parent
    if not folder.is_dir():
        raise CiaosrError(f"--json {path}: {folder} is not a folder")
    try:
        check_writable_folder(folder)
    except CiaosrError as exc:
        raise CiaosrError(f"--json {path}: {exc}") from None


def _write_json(path: Path, report: dict) -> None:
    from ..atomic import write_atomic

    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(report, f, indent=2)
            f.write("\n")

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CiaosrError(f"--json {path}: cannot create its folder ({exc.strerror or exc})") from None
    write_atomic(path, write, overwrite=True)


def run(args) -> int:
    from ..evaluation.report import format_table
    from ..evaluation.runner import evaluate, parse_steps
    from ..runtime import set_threads

    if args.chunk < 1:
        raise CiaosrError(f"--chunk must be positive, got {args.chunk}")
    set_threads(args.threads)
    if args.json:
        _check_json_path(Path(args.json))
    model = args.model
    if model is None:
        from ..models.pretrained import DEFAULT_MODEL
        model = DEFAULT_MODEL
    report = evaluate(
        model, args.data_root, args.datasets, args.scales, protocol=args.protocol,
        metrics=args.metrics, steps=parse_steps(args.steps), device=args.device,
        save_images=args.save_images, chunk=args.chunk, precision=args.precision,
    )
    steps = f", steps {args.steps}" if args.steps else ""
    print(f"model {report['model']}, {report['protocol']} protocol{steps}")
    print(format_table(report))
    sys.stdout.flush()
    if args.json:
        _write_json(Path(args.json), report)
    return 0

"""``ciaosr eval``: PSNR / SSIM / LPIPS of a model on benchmark sets, as the papers measure
them, or no-reference NIQE / BRISQUE / PIQE of its outputs on real low-resolution images."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import CiaosrError
from .command import Command, add_chunk, add_device, add_precision, add_threads

DEFAULT_DATASETS = ["Set5", "Set14", "B100", "Urban100"]
DEFAULT_SCALES = [2.0, 3.0, 4.0]


def arguments(p) -> None:
    from ..data.sets.catalog import eval_set_names
    from ..evaluation.metric_set import METRICS
    from ..options import LPIPS_NETS
    from ..paper.published import TABLES

    p.add_argument("--model", "-m", default=None,
                   help="model name with shipped weights, checkpoint file, or 'bicubic' (default: the default model)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data-root", metavar="DIR", help="folder holding one sub-folder per test set")
    src.add_argument("--input", metavar="DIR",
                     help="folder of real low-resolution images without HR: no-reference metrics only")
    p.add_argument("--datasets", nargs="+", default=None, metavar="SET",
                   help=f"test sets (sub-folders of --data-root; known: {eval_set_names()}); default: "
                        f"{' '.join(DEFAULT_DATASETS)}, with --table the table's")
    p.add_argument("--scales", nargs="+", type=float, default=None, metavar="S",
                   help="upscaling factors; default: 2 3 4, with --table the table's")
    p.add_argument("--table", type=int, choices=TABLES, default=None,
                   help="run one of the CiaoSR paper's tables for --models and print our figure, the "
                        "published one and the difference in each cell (Markdown; --json for JSON)")
    p.add_argument("--models", nargs="+", default=None, metavar="MODEL",
                   help="with --table: the models to run (names, checkpoints, 'bicubic'); default: --model")
    p.add_argument("--protocol", choices=["liif", "mmedit"], default="liif",
                   help="liif (default; LIIF/LTE papers) or mmedit (official CiaoSR code)")
    p.add_argument("--metrics", nargs="+", choices=METRICS, default=None,
                   help="default: psnr ssim (with --data-root), niqe brisque piqe (with --input)")
    p.add_argument("--lpips-net", choices=LPIPS_NETS, default="alex", help="LPIPS backbone (default alex)")
    p.add_argument("--lpips-weights", metavar="FILE", default=None,
                   help="torchvision's ImageNet weights of the LPIPS backbone (default: the torch hub cache)")
    p.add_argument("--skip-unavailable", action="store_true",
                   help="drop a metric that cannot run (LPIPS without backbone weights) instead of stopping")
    p.add_argument("--steps", default=None, metavar="S1,S2,...",
                   help="multi-step synthesis, e.g. 2,4,12: upsample x2, then x4, then x12 from the previous output")
    add_device(p)
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the model's encoder and decoder (inductor; compiled once per process)")
    add_precision(p, help="model precision: fp32 (default), bf16 (autocast; on a CPU without native bf16 "
                          "many times slower, warned about), fp16 (GPU only), auto (bf16 where the CPU or "
                          "GPU has it natively, else fp32)")
    add_threads(p, help="CPU threads (default: PyTorch's, one per core; under torchrun the cores divided among "
                        "the machine's processes); 1 is faster on a CPU other jobs share")
    add_chunk(p)
    p.add_argument("--json", metavar="FILE", default=None,
                   help="also write the results, per image, as JSON (missing folders are made; checked first)")
    p.add_argument("--save-images", metavar="DIR", default=None,
                   help="write the outputs as PNG to DIR/<set>/X<s>/<name>.png")


def _check_json_path(path: Path) -> None:
    """Refuse, before any work, a --json path the results could not be written to: a
    folder, a path below a file, or a folder that takes no new files."""
    from ..atomic import check_output_folder

    if path.is_dir():
        raise CiaosrError(f"--json {path}: is a folder; give a file name (e.g. {path / 'results.json'})")
    try:
        check_output_folder(path.parent)  # a missing one is made when the results are written
    except CiaosrError as exc:
        raise CiaosrError(f"--json {path}: {exc}") from None


def _write_json(path: Path, report: dict) -> None:
    from ..atomic import write_atomic

    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(report, f, indent=2)
            f.write("\n")

    write_atomic(path, write, overwrite=True, make_parents=True)


def run(args) -> int:
    from ..distributed import ShardGroup, dist_info_from_env, set_threads
    from ..evaluation.metric_set import NO_REFERENCE, PROTOCOL_METRICS
    from ..evaluation.runner import evaluate, evaluate_folder, parse_steps
    from .main import report_error

    if args.chunk < 1:
        raise CiaosrError(f"--chunk must be positive, got {args.chunk}")
    dist_info = dist_info_from_env()  # one process, or one of a torchrun job's
    set_threads(args.threads, dist_info)
    if args.json:
        _check_json_path(Path(args.json))
    if args.table is not None:
        from .eval_table import run_table

        report = run_table(args, dist_info)
        if args.json:
            _write_json(Path(args.json), report)
        return 0
    if args.models:
        raise CiaosrError("--models is for --table; give one --model")
    args.datasets = args.datasets or DEFAULT_DATASETS
    args.scales = args.scales or DEFAULT_SCALES
    model = args.model
    if model is None:
        from ..models.pretrained import DEFAULT_MODEL
        model = DEFAULT_MODEL
    common = dict(protocol=args.protocol, steps=parse_steps(args.steps), device=args.device,
                  save_images=args.save_images, chunk=args.chunk, precision=args.precision, compile=args.compile)
    group = ShardGroup.join(dist_info)  # under torchrun the images are split over the processes
    finished = False
    try:
        if args.input:
            report = evaluate_folder(model, args.input, args.scales, metrics=args.metrics or list(NO_REFERENCE),
                                     group=group, **common)
        else:
            report = evaluate(model, args.data_root, args.datasets, args.scales,
                              metrics=args.metrics or list(PROTOCOL_METRICS), lpips_net=args.lpips_net,
                              lpips_weights=args.lpips_weights, skip_unavailable=args.skip_unavailable,
                              group=group, **common)
        code = 0
        if group.is_main:  # all printed and written before the others hear the exit status
            try:
                _print_and_save(args, report)
            except CiaosrError as exc:
                report_error(str(exc))
                code = 2
        code = group.announce(code)
        finished = True
    finally:
        group.close(synchronise=finished)  # after an error the others may never come
    return code


def _print_and_save(args, report: dict) -> None:
    from ..evaluation.report import format_table

    for name, why in report["skipped"].items():
        print(f"warning: {name} skipped: {why}", file=sys.stderr)
    steps = f", steps {args.steps}" if args.steps else ""
    print(f"model {report['model']}, {report['protocol']} protocol{steps}")
    print(format_table(report))
    sys.stdout.flush()
    if args.json:
        _write_json(Path(args.json), report)


COMMAND = Command(
    "eval", help="benchmark a model (PSNR/SSIM/LPIPS; NIQE/BRISQUE/PIQE without HR) under the LIIF or mmediting protocol",
    description="Evaluate a model on benchmark sets (<data-root>/<Set>/HR, optional "
                "<Set>/LR_bicubic/X<s>), or a folder of real LR images without HR (--input), "
                "and print a markdown table of the metrics. Under torchrun (torchrun "
                "--nproc_per_node=N -m ciaosr eval ...) the images are split over the processes, "
                "each on cuda:<LOCAL_RANK> with GPUs, else the CPU; the table and the JSON are "
                "those of one process.",
    arguments=arguments, run=run)

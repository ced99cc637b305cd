"""``ciaosr eval --table N``: one of the CiaoSR paper's tables, our figures beside the
paper's. ``cli/eval.py`` calls it and writes ``--json``; nothing here imports ``cli/eval.py``."""

from __future__ import annotations

import sys

from ..errors import CiaosrError


def run_table(args, dist_info) -> dict:
    """Check the options that go with ``--table``, run the table, print it (Markdown)
    and return its report."""
    from ..paper import format_markdown, run_table as run

    if dist_info.enabled:
        raise CiaosrError("--table runs in one process, not under torchrun")
    if args.input:
        raise CiaosrError("--table needs --data-root (the test sets with their HR), not --input")
    for option, given in (("--steps", args.steps), ("--metrics", args.metrics), ("--save-images", args.save_images)):
        if given:
            raise CiaosrError(f"{option} does not go with --table: the table sets it")
    if args.model and args.models:
        raise CiaosrError("give the models with --models (or one --model), not both")
    models = args.models or [args.model or _default_model()]
    report = run(args.table, models, args.data_root, datasets=args.datasets, scales=args.scales,
                 protocol=args.protocol, device=args.device, chunk=args.chunk, precision=args.precision,
                 lpips_net=args.lpips_net, lpips_weights=args.lpips_weights)
    print(format_markdown(report))
    sys.stdout.flush()
    return report


def _default_model() -> str:
    from ..models.pretrained import DEFAULT_MODEL

    return DEFAULT_MODEL

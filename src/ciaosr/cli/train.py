"""``ciaosr train``: train a model from a YAML config (see docs/training.md).

Multi-GPU / multi-node: ``torchrun --nproc_per_node=K -m ciaosr train --config ...``.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import CiaosrError


def register(sub) -> None:
    p = sub.add_parser(
        "train", help="train a model from a YAML config (resumable; multi-GPU with torchrun)",
        description="Train an arbitrary-scale SR model with the paper's recipe. Configs are in configs/; "
                    "run folder: <output_dir>/<name>. Multi-GPU: torchrun --nproc_per_node=K -m ciaosr train ...")
    p.add_argument("--config", "-c", metavar="FILE", default=None,
                   help="YAML config (may be left out with --resume STATE: the state's own config is used)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key, value in YAML (e.g. --set train.iterations=5000); repeatable")
    p.add_argument("--resume", nargs="?", const=True, default=None, metavar="STATE",
                   help="continue a run: the latest state of the run folder, or the given state file / run folder")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads per process (the config key threads; same as --set threads=N)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.set_defaults(func=run)


def _config_from_args(args) -> dict:
    from ..training.config import build_config, load_config

    overrides = list(args.overrides)
    if args.threads is not None:
        overrides.append(f"threads={args.threads}")
    if args.config:
        return load_config(args.config, overrides)
    if isinstance(args.resume, str):
        import yaml

        from ..training.checkpointing import load_state, resolve_resume

        path = resolve_resume(args.resume, Path(args.resume))
        state = load_state(path)
        data = yaml.safe_load(state.get("config") or "") or {}
        return build_config(data, overrides, source=str(path))
    raise CiaosrError("--config is required (it may be left out only with --resume STATE)")


def run(args) -> int:
    from ..training.config import dump_config
    from ..training.trainer import Trainer

    cfg = _config_from_args(args)
    if args.print_config:
        print(dump_config(cfg), end="")
        return 0
    result = Trainer(cfg, resume=args.resume).run()
    if result.interrupted is not None:
        return 128 + int(result.interrupted)
    return 0

"""``ciaosr train``: train a model from a YAML config (see docs/training.md).

Multi-GPU / multi-node: ``torchrun --nproc_per_node=K -m ciaosr train --config ...``.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import CiaosrError
from .command import Command, add_threads


def arguments(p) -> None:
    p.add_argument("--config", "-c", metavar="FILE", default=None,
                   help="YAML config (may be left out with --resume STATE: the state's own config is used)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key, value in YAML (e.g. --set train.iterations=5000); repeatable")
    p.add_argument("--resume", nargs="?", const=True, default=None, metavar="STATE",
                   help="continue a run: the latest state of the run folder, or the given state file / run folder")
    add_threads(p, help="CPU threads per process (the config key threads; same as --set threads=N)")
    p.add_argument("--vgg", default=None, metavar="PATH",
                   help="torchvision's VGG19 weights vgg19-dcbb9e9d.pth, for the perceptual loss "
                        "(same as --set losses.vgg_weights=PATH; default: torch hub's cache)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def _configs_from_args(args) -> list[dict]:
    """The run's configs, one per stage (a config without ``stages:`` is one stage)."""
    import json

    from ..training.config import build_config, load_stages

    overrides = list(args.overrides)
    if args.threads is not None:
        overrides.append(f"threads={args.threads}")
    if args.vgg is not None:
        overrides.append(f"losses.vgg_weights={json.dumps(args.vgg)}")
    if args.config:
        configs = load_stages(args.config, overrides)
        if len(configs) > 1 and isinstance(args.resume, str):
            raise CiaosrError(f"{args.config} has {len(configs)} stages: give --resume without a path "
                              f"(each stage resumes from its own run folder)")
        return configs
    if isinstance(args.resume, str):
        import yaml

        from ..training.checkpointing import load_state, resolve_resume

        path = resolve_resume(args.resume, Path(args.resume))
        state = load_state(path)
        data = yaml.safe_load(state.get("config") or "") or {}
        return [build_config(data, overrides, source=str(path))]
    raise CiaosrError("--config is required (it may be left out only with --resume STATE)")


def run(args) -> int:
    from ..training.config import dump_config
    from ..training.trainer import Trainer

    configs = _configs_from_args(args)
    if args.print_config:
        print("---\n".join(dump_config(cfg) for cfg in configs), end="")
        return 0
    if len(configs) == 1:
        result = Trainer(configs[0], resume=args.resume, exit_on_signal=True).run()
        return 128 + int(result.interrupted) if result.interrupted is not None else 0
    return _run_stages(configs, resume=bool(args.resume))


def _run_stages(configs: list[dict], *, resume: bool) -> int:
    """Each stage in turn, in its own run folder. With ``resume``, a finished stage (its
    last state at ``train.iterations``, its weights exported) is skipped and an unfinished
    one continued. Every stage is checked before the first one starts; a stage that
    starts from the previous stage's weights is built again once they exist."""
    import copy
    import sys

    from ..training import checkpointing as ckpt
    from ..training.trainer import Trainer

    def finished(cfg) -> bool:
        run_dir = Path(cfg["output_dir"]).expanduser() / cfg["name"]
        states = ckpt.list_states(run_dir)
        return bool(states) and states[-1][0] >= cfg["train"]["iterations"] and (run_dir / ckpt.LAST).is_file()

    def has_states(cfg) -> bool:
        return bool(ckpt.list_states(Path(cfg["output_dir"]).expanduser() / cfg["name"]))

    pending = [i for i, cfg in enumerate(configs) if not (resume and finished(cfg))]
    for i in pending:  # the checks of every stage to run, before any work
        check = copy.deepcopy(configs[i])
        check["data"]["cache"] = False
        if i > 0 and i - 1 in pending:  # its initial weights do not exist yet
            check["init"]["checkpoint"] = None
        Trainer(check, resume=True if resume and has_states(check) else None)
    n = len(configs)
    for i, cfg in enumerate(configs):
        label = f"stage {i + 1} of {n} ({cfg['name']})"
        if i not in pending:
            print(f"{label}: finished already, skipped", file=sys.stderr)
            continue
        print(f"{label}", file=sys.stderr)
        note = f"{label} stopped; to continue with it and the stages after it, run the same command with --resume"
        result = Trainer(cfg, resume=True if resume and has_states(cfg) else None, exit_on_signal=True,
                         stop_note=note).run()
        if result.interrupted is not None:
            return 128 + int(result.interrupted)
        if result.timed_out:
            print(note, file=sys.stderr)
            return 0
    return 0


COMMAND = Command(
    "train", help="train a model from a YAML config (resumable; multi-GPU with torchrun)",
    description="Train an arbitrary-scale SR model with the paper's recipe. Configs are in configs/; "
                "run folder: <output_dir>/<name>. Multi-GPU: torchrun --nproc_per_node=K -m ciaosr train ... "
                "Ctrl-C or SIGTERM saves the state of the last finished step (the step in progress is "
                "abandoned) and exits 130 / 143 within seconds; --resume then validates and exports that "
                "step first, and trains on.",
    arguments=arguments, run=run)

"""Training-state checkpoints (resume to the step) and initial weights.

A training state is one ``torch.save`` file of plain tensors, numbers, strings, lists
and dicts, so ``torch.load(weights_only=True)`` reads it back: model and EMA weights,
optimiser, scheduler and GradScaler states, RNG states, the step, the number of
samples consumed, the best validation score, the model spec and the resolved config.
Files are written to a temporary name in the same folder and renamed into place, so a
crash mid-write never leaves a truncated state behind.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shlex
import sys
from pathlib import Path

import torch

from ..atomic import write_atomic
from ..checkpoints.loader import TRAINING_EXPORTS, TRAINING_STATE_FORMAT as STATE_FORMAT
from ..errors import CiaosrError

BEST, LAST = TRAINING_EXPORTS  # the run folder's exported model files
STATE_DIR = "states"
_STATE_RE = re.compile(r"^state_(\d+)\.pt$")


def state_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / STATE_DIR / f"state_{step:09d}.pt"


def list_states(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of the states in a run folder, oldest first."""
    d = Path(run_dir) / STATE_DIR
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _STATE_RE.match(p.name))]
    return sorted(found)


def latest_state(run_dir: Path) -> Path | None:
    states = list_states(run_dir)
    return states[-1][1] if states else None


def save_state(state: dict, path: Path) -> Path:
    """Atomic ``torch.save`` (see ``ciaosr.atomic``), replacing ``path`` if it exists."""
    path = Path(path)
    write_atomic(path, lambda tmp: torch.save(state, tmp), overwrite=True, make_parents=True)
    return path


def prune_states(run_dir: Path, keep: int) -> None:
    for _, path in list_states(run_dir)[:-keep] if keep > 0 else []:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def load_state(path: str | Path) -> dict:
    """Read a training state (plain tensors only); CiaosrError if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise CiaosrError(f"training state not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CiaosrError(f"{path}: not a readable training state ({first})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise CiaosrError(f"{path}: not a ciaosr training state (a model checkpoint? use init.checkpoint)")
    return state


def resolve_resume(resume: str | bool | None, run_dir: Path) -> Path | None:
    """``--resume`` with no value: the latest state of ``run_dir``; with a value: that
    state file, or the latest state of that run folder."""
    if resume in (None, False):
        return None
    if resume is True:
        path = latest_state(run_dir)
        if path is None:
            raise CiaosrError(f"nothing to resume: no training state in {Path(run_dir) / STATE_DIR}")
        return path
    p = Path(resume)
    if p.is_dir():
        path = latest_state(p)
        if path is None:
            raise CiaosrError(f"nothing to resume: no training state in {p / STATE_DIR}")
        return path
    if not p.exists():
        raise CiaosrError(f"resume checkpoint not found: {p}")
    return p


def canonical_spec(spec: dict) -> dict:
    """A model spec with tuples as lists, for comparing specs from different sources."""
    return json.loads(json.dumps({k: spec[k] for k in ("name", "encoder_args", "decoder_args")}))


def resume_command(path: Path, world_size: int = 1) -> str:
    """The command that continues a run from the state ``path``, to copy and paste: the
    state holds the resolved config (``--set`` values included), so nothing else is needed.
    Launched as ``python -m ciaosr``, it names this Python; under torchrun, torchrun."""
    if world_size > 1:
        local = os.environ.get("LOCAL_WORLD_SIZE", str(world_size))
        nodes = "" if local == str(world_size) else " --nnodes=... --node_rank=... --master_addr=..."
        launcher = f"torchrun{nodes} --nproc_per_node={local} -m ciaosr"
    elif sys.argv and Path(sys.argv[0]).parts[-2:] == ("ciaosr", "__main__.py"):
        launcher = f"{shlex.quote(sys.executable)} -m ciaosr"
    else:
        launcher = "ciaosr"
    return f"{launcher} train --resume {shlex.quote(str(path))}"


def check_state_matches(state: dict, spec: dict, source: str) -> None:
    theirs = json.loads(state["model_spec"])
    ours = canonical_spec(spec)
    if theirs != ours:
        if theirs["name"] != ours["name"]:
            what = f"model '{theirs['name']}' but this config builds '{ours['name']}'"
        else:
            diff = [k for k in ("encoder_args", "decoder_args") if theirs[k] != ours[k]]
            what = f"model '{theirs['name']}' with other {' and '.join(diff)} ({theirs[diff[0]]} vs {ours[diff[0]]})"
        raise CiaosrError(f"cannot resume from {source}: it is a state of {what}")


# --- initial weights -------------------------------------------------------------------

PART_PREFIX = {"encoder": "encoder.", "decoder": "decoder."}


def read_init_weights(source: str) -> tuple[dict[str, torch.Tensor], str]:
    """(state dict in our key names, model name) from a ciaosr safetensors file, an
    official checkpoint, a model name with shipped weights, or a training state."""
    p = Path(source)
    if p.is_file() and p.suffix in (".pt", ".pth", ".ckpt"):
        try:
            obj = torch.load(p, map_location="cpu", weights_only=True)
        except Exception:
            obj = None
        if isinstance(obj, dict) and obj.get("format") == STATE_FORMAT:
            weights = obj["ema"]["weights"] if obj.get("ema") else obj["model"]
            return dict(weights), json.loads(obj["model_spec"])["name"]
    from ..checkpoints.loader import load_model

    model = load_model(source)
    return dict(model.state_dict()), model.spec["name"]


def load_init_weights(model, source: str, parts: list[str]) -> list[str]:
    """Copy ``parts`` (all / encoder / decoder) of ``source``'s weights into ``model``.

    Every key of the chosen parts must exist in the source with the same shape.
    Returns the names of the tensors loaded.
    """
    sd, their_name = read_init_weights(source)
    own = model.state_dict()
    prefixes = tuple(PART_PREFIX.values()) if "all" in parts else tuple(PART_PREFIX[p] for p in parts)
    wanted = [k for k in own if k.startswith(prefixes)]
    missing = [k for k in wanted if k not in sd]
    wrong = [k for k in wanted if k in sd and sd[k].shape != own[k].shape]
    label = "+".join(parts)
    if missing or wrong:
        bad = missing[0] if missing else wrong[0]
        why = "missing" if missing else f"shape {tuple(sd[bad].shape)} vs {tuple(own[bad].shape)}"
        raise CiaosrError(
            f"init.checkpoint {source} ('{their_name}') does not fit the {label} of '{model.spec['name']}': "
            f"{len(missing) + len(wrong)} of {len(wanted)} tensors do not match (e.g. {bad}: {why})")
    with torch.no_grad():
        for k in wanted:
            own[k].copy_(sd[k])
    return wanted

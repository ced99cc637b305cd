"""``load_model``: one entry point for model names, our safetensors files and
official checkpoints (architecture detected from keys and shapes)."""

from __future__ import annotations

import os
import pickle
import re
import warnings
from pathlib import Path

import torch

from ..errors import CiaosrError, require_file
from ..models.factory import build_model
from ..models.pretrained import DEFAULT_MODEL, shipped
from ..models.registry import split_name
from .native import load_native, load_weights
from .official import convert_official

#: The format tag of a ``ciaosr train`` state file and the model files its run exports,
#: best first; defined here, below ``ciaosr.training``, which writes them.
TRAINING_STATE_FORMAT = "ciaosr-train-state-v1"
TRAINING_EXPORTS = ("best.safetensors", "last.safetensors")


# What a file that is not a checkpoint looks like, by its first bytes.
_MAGIC = [
    (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
    (b"II*\x00", "a TIFF image"), (b"MM\x00*", "a TIFF image"), (b"BM", "a BMP image"),
    (b"\x1f\x8b", "a gzip archive"), (b"7z\xbc\xaf", "a 7-Zip archive"), (b"%PDF", "a PDF document"),
]
_TORCH_ZIP, _PICKLE = b"PK\x03\x04", b"\x80"


def _file_kind(head: bytes) -> str | None:
    """What ``head`` (a file's first bytes) says the file is, when it is no PyTorch file
    (a zip archive or a pickle); None when it may be one."""
    if not head:
        return "an empty file"
    if head.startswith((_TORCH_ZIP, _PICKLE)):
        return None
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "a WebP image"
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html")):
        return "an HTML page (a failed download?)"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "not a zip archive or pickle"
    return "a text file"


def _read_torch_file(path: Path, head: bytes):
    """``torch.load`` restricted to plain tensors and containers (no code execution).
    Every failure is a one-line ``CiaosrError`` in our words: torch's own messages
    advise turning ``weights_only`` off, which would run code from the file."""
    kind = _file_kind(head)
    if kind is not None:
        raise CiaosrError(f"{path}: not a PyTorch checkpoint ({kind})")
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the error below says it all
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if found:
            raise CiaosrError(
                f"{path}: refusing to unpickle this file: it holds Python objects ({found.group(1)}), not only "
                f"tensors, and loading them would run code from the file") from None
        raise CiaosrError(f"{path}: not a PyTorch checkpoint (pickle data that plain tensors never need)") from None
    except Exception:  # torch.load fails in many ways on damaged files
        raise CiaosrError(f"{path}: not a readable PyTorch checkpoint (truncated or corrupt)") from None


def _refuse_training_state(obj, path: Path) -> None:
    """A ``ciaosr train`` state (``training.checkpointing``: ``<run>/states/state_N.pt``)
    holds optimiser and RNG state for ``--resume``; the model to use is exported next to
    it, ``<run>/best.safetensors`` (best validation) and ``<run>/last.safetensors``."""
    if not (isinstance(obj, dict) and obj.get("format") == TRAINING_STATE_FORMAT):
        return
    run = path.resolve().parent.parent if path.resolve().parent.name == "states" else path.resolve().parent
    exported = [run / name for name in TRAINING_EXPORTS if (run / name).is_file()]
    if exported:
        use = " or ".join(str(p) for p in exported)
    else:
        use = f"{run / TRAINING_EXPORTS[-1]} (written when the run saves a state or finishes)"
    raise CiaosrError(f"{path}: a training state of 'ciaosr train' (for --resume), not a model; use the "
                      f"weights its run exports: {use}")


def load_checkpoint_file(path: str | os.PathLike):
    """Load a model from a file: our safetensors format, or an official checkpoint."""
    path = Path(path)
    require_file(path, "a checkpoint")
    with open(path, "rb") as f:
        head = f.read(64)
    if path.suffix == ".safetensors" or (len(head) >= 9 and head[8:9] == b"{"):
        return load_native(path)
    obj = _read_torch_file(path, head)
    _refuse_training_state(obj, path)
    name, enc_args, dec_args, sd = convert_official(obj, str(path))
    model = build_model(name, enc_args, dec_args)
    load_weights(model, sd, str(path))
    return model


def load_model(path_or_name: str | os.PathLike | None = None, device: str | torch.device = "cpu"):
    """A ready-to-run model in eval mode.

    ``path_or_name``: a model name with shipped weights (``None`` for the default), a
    ``.safetensors`` file of ours, or an official CiaoSR/LIIF/LTE/MetaSR/ITSRN checkpoint.
    """
    key = DEFAULT_MODEL if path_or_name is None else str(path_or_name)
    entry = shipped(key)
    if entry is not None:
        model = load_native(entry.path)
        model.pretrained = entry
    elif os.path.exists(key) or os.sep in key or key.endswith((".pth", ".pt", ".safetensors", ".ckpt")):
        model = load_checkpoint_file(key)
    else:
        split_name(key)  # raises "unknown model" for names that are not models at all
        raise CiaosrError(f"model '{key}' has no shipped weights; pass a checkpoint file "
                          f"(models with weights: see 'ciaosr models')")
    return model.to(device).eval()


__all__ = ["load_model", "load_checkpoint_file"]

"""``load_model``: one entry point for model names, our safetensors files and
official checkpoints (architecture detected from keys and shapes)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch

from ..errors import CiaosrError
from ..models.factory import build_model
from ..models.pretrained import DEFAULT_MODEL, shipped
from ..models.registry import split_name
from .native import load_native, load_weights
from .official import convert_official


def _read_torch_file(path: Path):
    """``torch.load`` restricted to plain tensors and containers (no code execution)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsupported object"
        raise CiaosrError(
            f"{path}: refusing to unpickle this file, it needs more than plain tensors ({first})"
        ) from None
    except Exception as exc:  # torch.load fails in many ways on arbitrary bytes
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CiaosrError(f"{path}: not a PyTorch checkpoint ({first})") from None


def load_checkpoint_file(path: str | os.PathLike):
    """Load a model from a file: our safetensors format, or an official checkpoint."""
    path = Path(path)
    if not path.exists():
        raise CiaosrError(f"{path}: no such file")
    if path.is_dir():
        raise CiaosrError(f"{path}: is a folder, not a checkpoint")
    with open(path, "rb") as f:
        head = f.read(16)
    if path.suffix == ".safetensors" or (len(head) >= 9 and head[8:9] == b"{"):
        return load_native(path)
    name, enc_args, dec_args, sd = convert_official(_read_torch_file(path), str(path))
    model = build_model(name, enc_args, dec_args)
    load_weights(model, sd, str(path))
    return model


def load_model(path_or_name: str | os.PathLike | None = None, device: str | torch.device = "cpu"):
    """A ready-to-run model in eval mode.

    ``path_or_name``: a model name with shipped weights (``None`` for the default), a
    ``.safetensors`` file of ours, or an official CiaoSR/LIIF/LTE checkpoint.
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

"""The project's checkpoint format: safetensors, with the model name and constructor
arguments in the metadata, so a file alone rebuilds its model. No pickle."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..atomic import write_atomic
from ..errors import CiaosrError
from ..models.factory import build_model

FORMAT_TAG = "ciaosr-checkpoint-v1"


def save_checkpoint(model, path: str | os.PathLike, extra: dict | None = None) -> Path:
    """Write ``model``'s weights and spec atomically (temporary file, then rename)."""
    path = Path(path)
    spec = getattr(model, "spec", None)
    if spec is None:
        raise CiaosrError("model has no spec (build it with ciaosr.build_model)")
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    meta = {
        "format": FORMAT_TAG,
        "model": spec["name"],
        "encoder_args": json.dumps(spec["encoder_args"]),
        "decoder_args": json.dumps(spec["decoder_args"]),
    }
    for key, value in (extra or {}).items():
        meta[key] = value if isinstance(value, str) else json.dumps(value)
    write_atomic(path, lambda tmp: save_file(tensors, tmp, metadata=meta), overwrite=True, make_parents=True)
    return path


def read_metadata(path: str | os.PathLike) -> dict:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:  # safetensors raises several types on corrupt headers
        raise CiaosrError(f"{path}: not a readable safetensors file ({exc})") from None


def load_native(path: str | os.PathLike):
    """Rebuild and load a model from one of the project's safetensors files."""
    meta = read_metadata(path)
    if meta.get("format") != FORMAT_TAG or "model" not in meta:
        raise CiaosrError(f"{path}: safetensors file without ciaosr model metadata")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CiaosrError(f"{path}: cannot read weights ({exc})") from None
    model = build_model(meta["model"], json.loads(meta["encoder_args"]), json.loads(meta["decoder_args"]))
    load_weights(model, tensors, str(path))
    model.metadata = meta
    return model


def load_weights(model, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Strict load with a one-line error naming what did not fit."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    wrong = [k for k in own if k in state_dict and own[k].shape != state_dict[k].shape]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong:
            parts.append(f"{len(wrong)} of wrong shape (e.g. {wrong[0]})")
        raise CiaosrError(f"{source}: weights do not fit model '{model.spec['name']}': " + ", ".join(parts))
    model.load_state_dict(state_dict, strict=True)

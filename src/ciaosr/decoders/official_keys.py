"""Helpers for decoders trained by the LIIF code base (LIIF, LTE, MetaSR checkpoints)."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from ..errors import CiaosrError


def model_spec(obj: Mapping) -> Mapping:
    """Accept a full official checkpoint ``{'model': {...}}`` or the model spec itself."""
    if "model" in obj and isinstance(obj["model"], Mapping):
        return obj["model"]
    return obj


def decoder_part(sd: Mapping, prefixes: tuple[str, ...], family: str) -> dict[str, Tensor]:
    """The decoder's tensors of an official state dict (keys unchanged, ``encoder.*`` and
    any ``module.`` prefix removed). Also accepts the checkpoint or its ``model`` spec;
    a key outside ``prefixes`` is an error."""
    if "sd" in sd or "model" in sd:
        sd = model_spec(sd)["sd"]
    out: dict[str, Tensor] = {}
    for key, value in sd.items():
        if key.startswith("module."):
            key = key[len("module."):]
        if key.startswith("encoder."):
            continue
        if not key.startswith(prefixes):
            raise CiaosrError(f"unexpected key in a {family} state dict: {key!r}")
        out[key] = value
    return out

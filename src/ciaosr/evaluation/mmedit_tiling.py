"""mmediting's ``clip_test`` tiling, as the official CiaoSR code evaluates (the ``mmedit``
protocol). Not the memory-bounded tiler of ``ciaosr upscale`` (``ciaosr.inference.tiling``):
this one reproduces the official numbers, tile borders and all."""

from __future__ import annotations

import inspect

import torch

from .protocol import MMEDIT_TILE, MMEDIT_TILE_OVERLAP


def _accepts_kwarg(fn, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _upsample_unclamped(model, lr: torch.Tensor, size: tuple[int, int], chunk: int) -> torch.Tensor:
    """``model.upsample`` without its final clamp, where the model allows that."""
    if _accepts_kwarg(model.upsample, "clamp"):
        return model.upsample(lr, size, chunk=chunk, clamp=False)
    return model.upsample(lr, size, chunk=chunk)


def tiled_upsample(model, lr: torch.Tensor, scale: int, *, tile: int = MMEDIT_TILE,
                   overlap: int = MMEDIT_TILE_OVERLAP, chunk: int = 30000) -> torch.Tensor:
    """mmediting's ``clip_test``: square LR tiles of ``min(tile, h, w)`` with ``overlap``,
    each upsampled whole, overlaps averaged. Integer ``scale`` only.

    When the model's ``upsample`` takes ``clamp=False`` the tiles are averaged before
    clamping, as the official code does; otherwise the clamped tiles are averaged.
    """
    b, _, h, w = lr.shape
    t = min(tile, h, w)
    stride = t - overlap
    if (h == t and w == t) or stride <= 0:
        # One tile is the whole image; with stride <= 0 the official tiling would
        # leave pixels uncovered, so the whole image is used instead.
        return model.upsample(lr, (h * scale, w * scale), chunk=chunk)
    rows = list(range(0, h - t, stride)) + [h - t]
    cols = list(range(0, w - t, stride)) + [w - t]
    acc = torch.zeros(b, 3, h * scale, w * scale, dtype=lr.dtype, device=lr.device)
    count = torch.zeros(1, 1, h * scale, w * scale, dtype=lr.dtype, device=lr.device)
    ts = t * scale
    for i in rows:
        for j in cols:
            out = _upsample_unclamped(model, lr[..., i:i + t, j:j + t], (ts, ts), chunk)
            acc[..., i * scale:i * scale + ts, j * scale:j * scale + ts] += out
            count[..., i * scale:i * scale + ts, j * scale:j * scale + ts] += 1
    return (acc / count).clamp(0, 1)

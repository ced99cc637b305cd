"""MATLAB-exact ``imresize(..., 'bicubic')`` for torch tensors.

The benchmark low-resolution images of the super-resolution literature were made with
MATLAB's ``imresize(hr, 1/s, 'bicubic')``. It differs from PIL and from
``torch.nn.functional.interpolate`` in three ways, all reproduced here:

* the cubic kernel has ``a = -0.5`` and, when downscaling, is widened by ``1/scale``
  (antialiasing), with every output pixel's weights normalised to sum to one;
* borders are handled by *symmetric* extension (``a b c | c b a``, the edge pixel
  repeated), applied with wrap-around, so it works for any kernel size;
* the two dimensions are resized one after the other, the one with the smaller scale
  first, and for ``uint8`` images the intermediate result is rounded to ``uint8``
  (MATLAB returns the input's class from each one-dimensional pass).

The weights are computed in float64 exactly as MATLAB computes them; applying them is
a gather along one axis per kernel tap, so it runs on any device. ``imresize`` keeps a
floating-point input's dtype; ``imresize_uint8`` takes and returns ``uint8`` and rounds
like MATLAB (half away from zero, saturating to [0, 255]) after each pass.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Sequence

import numpy as np
import torch

__all__ = ["imresize", "imresize_uint8", "output_size", "contributions", "cubic"]


def cubic(x: np.ndarray) -> np.ndarray:
    """MATLAB's bicubic kernel (Keys, a = -0.5), in float64."""
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    inner = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    outer = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return inner + outer


@lru_cache(maxsize=256)
def contributions(in_len: int, out_len: int, scale: float, antialias: bool = True):
    """Weights and source indices of one resized axis, as MATLAB's ``contributions``.

    Returns ``(weights, indices)``: float64 and int64 arrays of shape (out_len, P),
    indices 0-based and already folded into [0, in_len) by symmetric extension. Taps
    whose weight is zero for every output pixel are dropped, as MATLAB drops them.
    """
    kernel_width = 4.0
    if scale < 1 and antialias:
        def kernel(t):
            return scale * cubic(scale * t)
        kernel_width = kernel_width / scale
    else:
        kernel = cubic
    x = np.arange(1, out_len + 1, dtype=np.float64)
    # Output pixel x (1-based) centred at u in input coordinates (1-based).
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - kernel_width / 2.0)
    taps = int(math.ceil(kernel_width)) + 2
    indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    weights = kernel(u[:, None] - indices)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # Symmetric extension: index i (1-based) maps through [1..n, n..1] periodically.
    idx = indices.astype(np.int64) - 1
    period = 2 * in_len
    idx = np.mod(idx, period)
    idx = np.where(idx < in_len, idx, period - 1 - idx)
    keep = np.any(weights != 0, axis=0)
    weights = np.ascontiguousarray(weights[:, keep])
    idx = np.ascontiguousarray(idx[:, keep])
    weights.setflags(write=False)
    idx.setflags(write=False)
    return weights, idx


def _pair(v) -> tuple[float, float]:
    if isinstance(v, (int, float)):
        return float(v), float(v)
    v = tuple(v)
    if len(v) != 2:
        raise ValueError(f"expected one value or two (h, w), got {v!r}")
    return float(v[0]), float(v[1])


def _plan(in_hw: tuple[int, int], scale=None, size=None):
    """(output size, per-axis scale) as MATLAB derives them from 'scale' or size."""
    if (scale is None) == (size is None):
        raise ValueError("give exactly one of scale and size")
    if scale is not None:
        sh, sw = _pair(scale)
        if sh <= 0 or sw <= 0:
            raise ValueError(f"scale must be positive, got {scale!r}")
        out = (int(math.ceil(sh * in_hw[0])), int(math.ceil(sw * in_hw[1])))
        scales = (sh, sw)
    else:
        oh, ow = (int(s) for s in size)
        if oh <= 0 or ow <= 0:
            raise ValueError(f"size must be positive, got {size!r}")
        out = (oh, ow)
        scales = (oh / in_hw[0], ow / in_hw[1])
    return out, scales


def output_size(in_hw: Sequence[int], scale) -> tuple[int, int]:
    """The size MATLAB's ``imresize(A, scale)`` returns: ``ceil(scale * in)``."""
    return _plan((int(in_hw[0]), int(in_hw[1])), scale=scale)[0]


def _resize_axis(x: torch.Tensor, dim: int, in_len: int, out_len: int, scale: float,
                 antialias: bool, compute_dtype: torch.dtype) -> torch.Tensor:
    weights, idx = contributions(in_len, out_len, float(scale), bool(antialias))
    w = torch.from_numpy(np.array(weights)).to(device=x.device, dtype=compute_dtype)
    ix = torch.from_numpy(np.array(idx)).to(device=x.device)
    shape = [1] * x.dim()
    shape[dim] = out_len
    out = None
    for k in range(ix.shape[1]):  # taps in MATLAB's order
        term = x.index_select(dim, ix[:, k]) * w[:, k].view(shape)
        out = term if out is None else out + term
    return out


def _resize(x: torch.Tensor, scale, size, antialias: bool, compute_dtype: torch.dtype,
            between=None) -> torch.Tensor:
    if x.dim() < 2:
        raise ValueError(f"expected a tensor (..., H, W), got shape {tuple(x.shape)}")
    in_hw = (x.shape[-2], x.shape[-1])
    out_hw, scales = _plan(in_hw, scale, size)
    # MATLAB resizes the dimension with the smaller scale first (stable: H on ties).
    order = (0, 1) if scales[0] <= scales[1] else (1, 0)
    y = x.to(compute_dtype)
    for n, axis in enumerate(order):
        if out_hw[axis] == in_hw[axis] and scales[axis] == 1.0:
            continue  # MATLAB skips an axis whose scale is exactly 1
        dim = x.dim() - 2 + axis
        y = _resize_axis(y, dim, in_hw[axis], out_hw[axis], scales[axis], antialias, compute_dtype)
        if between is not None and n == 0:
            y = between(y)
    return y


def imresize(x: torch.Tensor, scale=None, size=None, *, antialias: bool = True) -> torch.Tensor:
    """MATLAB ``imresize(x, scale)`` / ``imresize(x, [h w])`` with 'bicubic'.

    ``x`` is a floating-point tensor (..., H, W), typically (B, C, H, W), on any
    device; the result has the same dtype and device and is not clamped. Give
    either ``scale`` (one factor or (s_h, s_w); output ``ceil(scale * in)``) or
    ``size`` = (h, w) (per-axis scale ``out / in``). Antialiasing applies when
    downscaling, as in MATLAB.
    """
    if not torch.is_floating_point(x):
        raise TypeError("imresize takes a floating-point tensor; use imresize_uint8 for uint8")
    return _resize(x, scale, size, antialias, x.dtype)


def round_like_matlab(x: torch.Tensor) -> torch.Tensor:
    """Round half away from zero and saturate to [0, 255], as MATLAB's uint8 cast."""
    return torch.where(x >= 0, torch.floor(x + 0.5), torch.ceil(x - 0.5)).clamp_(0, 255)


def imresize_uint8(x: torch.Tensor, scale=None, size=None, *, antialias: bool = True) -> torch.Tensor:
    """MATLAB ``imresize`` of a ``uint8`` image: uint8 in, uint8 out.

    Computes in float64 (float32 on devices without float64) and, like MATLAB,
    rounds to uint8 after each one-dimensional pass.
    """
    if x.dtype != torch.uint8:
        raise TypeError(f"imresize_uint8 takes a uint8 tensor, got {x.dtype}")
    dtype = torch.float32 if x.device.type == "mps" else torch.float64
    y = _resize(x, scale, size, antialias, dtype, between=round_like_matlab)
    return round_like_matlab(y).to(torch.uint8)

"""Filtering a batch with one kernel per sample, borders mirrored.

Borders are extended by reflection without repeating the edge pixel (``d c b | a b c d
| c b a``), OpenCV's default ``BORDER_REFLECT_101``, SciPy's ``mode='mirror'`` and
torch's ``'reflect'``: the border the published degradation code filters with. Unlike
``F.pad(mode='reflect')`` it works for any pad, also one wider than the image (the
reflection folds back and forth), which the small images late in a pipeline need.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mirror_indices(n: int, before: int, after: int, device=None) -> torch.Tensor:
    """Source indices of an axis of ``n`` pixels extended by ``before`` and ``after``
    pixels, reflected about the edge pixels (period ``2n - 2``)."""
    idx = torch.arange(-before, n + after, device=device)
    if n == 1:
        return torch.zeros_like(idx)
    period = 2 * n - 2
    idx = torch.remainder(idx, period)
    return torch.where(idx < n, idx, period - idx)


def mirror_pad(x: torch.Tensor, ph: int, pw: int) -> torch.Tensor:
    """(..., H, W) -> (..., H + 2 ph, W + 2 pw), mirrored borders."""
    h, w = x.shape[-2:]
    if ph:
        x = x.index_select(-2, mirror_indices(h, ph, ph, x.device))
    if pw:
        x = x.index_select(-1, mirror_indices(w, pw, pw, x.device))
    return x


def filter2d(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Correlate each sample of ``x`` (n, C, H, W) with its kernel (n, k, k) (odd k),
    every channel alike; mirrored borders, same size out. One grouped convolution."""
    n, c, h, w = x.shape
    k = kernels.shape[-1]
    if kernels.shape != (n, k, k) or k % 2 == 0:
        raise ValueError(f"need one odd square kernel per sample, got {tuple(kernels.shape)} for {n} samples")
    padded = mirror_pad(x, k // 2, k // 2).reshape(1, n * c, h + k - 1, w + k - 1)
    weight = kernels.to(x.dtype).repeat_interleave(c, dim=0).unsqueeze(1)
    return F.conv2d(padded, weight, groups=n * c).view(n, c, h, w)


def separable_filter(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Correlate every channel of ``x`` (n, C, H, W) with the 1-D kernel ``taps`` (odd
    length) along rows, then columns: the 2-D kernel ``outer(taps, taps)`` at a fraction
    of the cost. Mirrored borders, same size out."""
    n, c, h, w = x.shape
    k = taps.numel()
    t = taps.to(device=x.device, dtype=x.dtype)
    flat = x.reshape(1, n * c, h, w)
    flat = F.conv2d(mirror_pad(flat, 0, k // 2), t.view(1, 1, 1, k).expand(n * c, 1, 1, k), groups=n * c)
    flat = F.conv2d(mirror_pad(flat, k // 2, 0), t.view(1, 1, k, 1).expand(n * c, 1, k, 1), groups=n * c)
    return flat.view(n, c, h, w)

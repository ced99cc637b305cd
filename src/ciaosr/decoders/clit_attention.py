"""CLIT's local attention (Chen et al., CVPR 2023; official code jaroslaw1007/CLIT,
``models/clit.py`` and ``models/positionencoder.py``), one cascade stage's query half.

A query at ``coord`` attends to the (2r + 1)^2 feature-map pixels around its nearest one
(r = 3: 7 x 7), per head:

- the query vector is the query map's *bilinear* sample at ``coord`` (zero padding beyond
  the map, ``grid_sample``'s default, so queries near the border see a shrunken vector);
- keys and values are the key and value maps at the window's pixels, zero where the
  window leaves the map;
- the logits ``q . k / sqrt(d)`` plus a positional bias of the offset ``rel`` (query minus
  pixel centre, in pixels of the map) are soft-maxed over the window;
- the output is the values weighted per head, *not* summed: the window's (2r + 1)^2 * C
  numbers (pixel-major, then channel) go to the stage's MLP.

The positional bias is the official ``posenc`` of type ``sinusoid`` used as a bias: the
offset times ``dims / 2`` frequency vectors (``2^linspace(0, scale, dims / 4) - 1`` along
the row axis, then the same along the column axis), ``[sin, cos]`` of those, and one
Linear to a bias per head (``proj``). The frequencies are not learnt and not stored.

The window's pixels are found as the official code finds them, by ``grid_sample``'s own
rounding (the nearest pixel, then whole-pixel steps), and ``rel`` is computed in its
order of float operations (the nearest centre plus ``linspace(-r, r) * 2 / n``, then
subtracted from the query, then times ``n``): at the frequencies up to 1023 that the
bias uses, a rounding-size difference in ``rel`` would show in the output.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .sampling import sample_nearest


class SinusoidPositionBias(nn.Module):
    """The official ``PositionEncoder(posenc_type='sinusoid')`` as CLIT calls it: (..., 2)
    offsets -> (..., heads) biases."""

    def __init__(self, heads: int, dims: int = 64, scale: float = 10.0):
        super().__init__()
        if dims % 4:
            raise ValueError(f"CLIT positional-bias dims must be a multiple of 4, got {dims}")
        freqs = 2.0 ** torch.linspace(0, scale, dims // 4) - 1
        rows = torch.stack([freqs, torch.zeros_like(freqs)], dim=-1)
        self.register_buffer("freqs", torch.cat([rows, rows.roll(1, -1)]), persistent=False)  # (dims / 2, 2)
        self.proj = nn.Linear(dims, heads)

    def forward(self, rel: Tensor) -> Tensor:
        x = rel @ self.freqs.t().to(rel.dtype)
        return self.proj(torch.cat([torch.sin(x), torch.cos(x)], dim=-1))


def window_offsets(radius: int, size: tuple[int, int], device=None) -> tuple[Tensor, Tensor]:
    """The window's whole-pixel steps (n, 2) as integers (row, col), pixel-major, and in
    [-1, 1] units of an ``size`` map (``linspace(-r, r) * 2 / n`` per axis, the official
    ``delta``)."""
    h, w = size
    steps = torch.linspace(-radius, radius, 2 * radius + 1, device=device)
    grid = torch.stack(torch.meshgrid(steps * (2 / h), steps * (2 / w), indexing="ij"), dim=-1).view(-1, 2)
    whole = torch.stack(torch.meshgrid(steps, steps, indexing="ij"), dim=-1).view(-1, 2).long()
    return whole, grid


def window(stage: dict, coord: Tensor, radius: int) -> tuple[Tensor, Tensor, Tensor]:
    """The window of each query on a stage's map (``size``, ``index``, ``centres`` as
    :func:`ciaosr.decoders.sampling.from_pixel_tables` gives them): the rows of its
    (B*H*W, ...) tables (B, Q, n, clamped into the map), whether each pixel lies in the
    map (B, Q, n), and the offsets ``rel`` (B, Q, n, 2) in pixels of the map."""
    h, w = stage["size"]
    b = coord.shape[0]
    near = sample_nearest(stage["index"], coord)[..., 0].long()  # (B, Q) pixel numbers
    whole, delta = window_offsets(radius, (h, w), coord.device)
    ys = (near // w).unsqueeze(-1) + whole[:, 0]
    xs = (near % w).unsqueeze(-1) + whole[:, 1]
    inside = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
    rows = ys.clamp(0, h - 1) * w + xs.clamp(0, w - 1) + (torch.arange(b, device=coord.device) * (h * w)).view(b, 1, 1)
    centres = stage["centres"][near].to(coord.dtype)  # (B, Q, 2)
    pixel = centres.unsqueeze(2) + delta.to(coord.dtype)
    rel = (coord.unsqueeze(2) - pixel) * torch.tensor([h, w], dtype=coord.dtype, device=coord.device)
    return rows, inside, rel


def sample_bilinear(feat: Tensor, coord: Tensor) -> Tensor:
    """(B, C, H, W) map, (B, Q, 2) (row, col) coords -> (B, Q, C) bilinear samples with
    zero padding (``grid_sample``'s defaults, as the official query and stage maps)."""
    out = F.grid_sample(feat, coord.flip(-1).unsqueeze(1).to(feat.dtype), mode="bilinear", align_corners=False)
    return out[:, :, 0, :].permute(0, 2, 1)


def attend(q: Tensor, k: Tensor, v: Tensor, heads: int, bias: Tensor | None) -> Tensor:
    """q (B, Q, C), k and v (B, Q, n, C) (zero outside the map), bias (B, Q, n, heads) or
    None -> the values weighted per head by the soft-maxed window logits, (B, Q, n * C)."""
    b, nq, n, c = k.shape
    d = c // heads
    q = q.reshape(b, nq, heads, 1, d)
    k = k.reshape(b, nq, n, heads, d).permute(0, 1, 3, 4, 2)
    logits = (q @ k).reshape(b, nq, heads, n).permute(0, 1, 3, 2) / math.sqrt(d)  # (B, Q, n, heads)
    if bias is not None:
        logits = logits + bias
    weights = F.softmax(logits, dim=-2)
    return (v.reshape(b, nq, n, heads, d) * weights.unsqueeze(-1)).reshape(b, nq, n * c)

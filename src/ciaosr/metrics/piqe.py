"""PIQE, the Perception-based Image Quality Evaluator (Venkatanath et al., NCC 2015), as
MATLAB's ``piqe`` computes it. No learned parameters; 0 (best) to 100 (worst).

1. Luma: MATLAB ``rgb2gray`` (default) or the Y of ``rgb2ycbcr`` (``channel="y"``),
   whole numbers in [0, 255]; padded at the bottom and right by repeating the last
   row / column up to a multiple of 16.
2. MSCN coefficients (7 x 7 Gaussian, sigma 7/6, replicated borders), cut into 16 x 16
   blocks. A block is *active* when the sample variance ``v`` of its coefficients
   exceeds 0.1.
3. An active block has a *noticeable artifact* when some run of 6 consecutive pixels
   along one of its four edges has a sample standard deviation below 0.1, and *noise*
   when ``sigma > 2 beta`` with ``sigma = sqrt(v)``, ``c`` the ratio of the standard
   deviations of the block's centre (its 8th and 9th columns) and its surround (the
   other columns but the 10th, as MATLAB's deletion of two columns in turn leaves it)
   and ``beta = |sigma - c| / max(sigma, c)``.
4. ``score = 100 (1 + sum over active blocks of [artifact] (1 - v) + [noise] v) /
   (1 + number of active blocks)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .nss import luma255, mscn

__all__ = ["piqe", "BLOCK"]

BLOCK = 16
ACTIVITY_THRESHOLD = 0.1
IMPAIRED_THRESHOLD = 0.1
SEGMENT = 6


def _edge_impaired(blocks: torch.Tensor) -> torch.Tensor:
    """(N, 16, 16) -> (N,) whether some 6-pixel run along an edge is nearly flat."""
    edges = torch.stack([blocks[:, 0, :], blocks[:, :, -1], blocks[:, -1, :], blocks[:, :, 0]], dim=1)
    runs = edges.unfold(-1, SEGMENT, 1)  # (N, 4, 11, 6)
    return (runs.std(dim=-1) < IMPAIRED_THRESHOLD).flatten(1).any(dim=1)


def _noisy(blocks: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """(N, 16, 16), (N,) -> (N,) the centre-surround noise criterion."""
    sigma = torch.sqrt(var)
    centre = blocks[:, :, 7:9].reshape(blocks.shape[0], -1)
    keep = [c for c in range(BLOCK) if c not in (7, 9)]
    surround = blocks[:, :, keep].reshape(blocks.shape[0], -1)
    ratio = torch.nan_to_num(centre.std(dim=1) / surround.std(dim=1), nan=0.0, posinf=float("inf"))
    beta = torch.abs(sigma - ratio) / torch.maximum(sigma, ratio)
    return sigma > 2 * beta


def piqe(img, *, channel: str = "gray", device=None) -> float:
    """PIQE of one image (NumPy H x W x 3 uint8, or a tensor as the package takes them).

    Runs on the tensor's device (or ``device``), in float64.
    """
    y = luma255(img, channel, device)
    h, w = y.shape[-2:]
    y = F.pad(y, (0, -w % BLOCK, 0, -h % BLOCK), mode="replicate")
    coeffs, _ = mscn(y)
    c = coeffs[0, 0]
    hh, ww = c.shape
    blocks = c.reshape(hh // BLOCK, BLOCK, ww // BLOCK, BLOCK).permute(0, 2, 1, 3).reshape(-1, BLOCK, BLOCK)
    var = blocks.reshape(blocks.shape[0], -1).var(dim=1)
    active = var > ACTIVITY_THRESHOLD
    artifact = _edge_impaired(blocks)
    noise = _noisy(blocks, var)
    dist = (active & artifact).double() * (1 - var) + (active & noise).double() * var
    return float((100.0 * (dist.sum() + 1.0) / (active.sum() + 1.0)).item())

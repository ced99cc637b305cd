"""Continuous coordinates and cells, in the LIIF / mmediting convention.

A coordinate is (row, col) in [-1, 1] at pixel centres: for an axis of n pixels the
centres are ``-1 + 1/n + 2i/n``. Element 0 is the row (height) axis, so
``grid_sample`` must be given ``coord.flip(-1)``. The cell of a query on an output of
size h x w is ``(2/h, 2/w)``.
"""

from __future__ import annotations

import torch


def axis_centres(n: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Pixel-centre coordinates of an axis of ``n`` pixels in [-1, 1]."""
    r = 1.0 / n
    return -1 + r + (2 * r) * torch.arange(n, device=device, dtype=torch.float32).to(dtype)


def make_coord(shape: tuple[int, int], device=None, dtype=torch.float32) -> torch.Tensor:
    """The full (h*w, 2) grid of (row, col) centres of an h x w image, row-major."""
    h, w = shape
    rows = axis_centres(h, device, dtype)
    cols = axis_centres(w, device, dtype)
    grid = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1)
    return grid.reshape(-1, 2)


def make_cell(shape: tuple[int, int], n: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(n, 2) cells ``(2/h, 2/w)`` for ``n`` queries on an h x w output."""
    h, w = shape
    cell = torch.tensor([2.0 / h, 2.0 / w], device=device, dtype=dtype)
    return cell.expand(n, 2).clone()


def target_size(in_size: tuple[int, int], scale: float | tuple[float, float]) -> tuple[int, int]:
    """Output (h, w) for an input (h, w) and a scale (one factor, or (s_h, s_w)).

    Uses Python's ``round`` (halves to even), as the official code does.
    """
    if isinstance(scale, (int, float)):
        scale = (float(scale), float(scale))
    return round(in_size[0] * scale[0]), round(in_size[1] * scale[1])

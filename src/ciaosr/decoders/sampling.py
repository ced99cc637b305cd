"""Neighbour sampling shared by the local implicit decoders: nearest-LR-pixel lookups,
the pixel-centre map, 3x3 unfolding, the four 2x2-neighbour positions of LIIF's local
ensemble and its area blend.

Every lookup goes through ``grid_sample`` itself: at non-integer scales query
positions fall exactly on LR pixel borders, and the official implementations settle
those ties by ``grid_sample``'s own rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..geometry import make_coord


def sample_nearest(feat: torch.Tensor, coord: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) map, (B, Q, 2) (row, col) coords -> (B, Q, C) nearest values."""
    out = F.grid_sample(feat, coord.flip(-1).unsqueeze(1).to(feat.dtype), mode="nearest",
                        align_corners=False)
    return out[:, :, 0, :].permute(0, 2, 1)


def feature_coord(feat: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """(B, 2, H, W) map of the LR pixel-centre coordinates of ``feat``."""
    b, _, h, w = feat.shape
    grid = make_coord((h, w), feat.device, dtype).view(h, w, 2).permute(2, 0, 1)
    return grid.unsqueeze(0).expand(b, 2, h, w)


def pixel_grid(batch: int, size: tuple[int, int], device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The (H*W, 2) LR pixel centres (row-major) and the (B, 1, H, W) map of pixel
    numbers that queries look up with :func:`sample_nearest` (grid_sample's own
    rounding) of an H x W feature map."""
    h, w = size
    index = torch.arange(h * w, device=device, dtype=torch.float32).view(1, 1, h, w).expand(batch, 1, h, w)
    return make_coord((h, w), device), index


def pixel_tables(prep: dict, names) -> dict[str, torch.Tensor]:
    """A prepared dict's per-LR-pixel tables ``names`` (rows ``b*H*W + pixel``, next to
    its ``size`` and ``index``) as (B, H*W, C) each: ``Decoder.tables``."""
    b, (h, w) = prep["index"].shape[0], prep["size"]
    return {name: prep[name].view(b, h * w, -1) for name in names}


def from_pixel_tables(tables: dict[str, torch.Tensor], size: tuple[int, int]) -> dict:
    """The inverse of :func:`pixel_tables`: the tables as (B*H*W, C) rows, with the
    ``size``, pixel ``centres`` and ``index`` of an H x W map (``Decoder.from_tables``)."""
    first = next(iter(tables.values()))
    centres, index = pixel_grid(first.shape[0], size, first.device)
    return {"size": size, "centres": centres, "index": index, **{k: t.flatten(0, 1) for k, t in tables.items()}}


def unfold3x3(feat: torch.Tensor) -> torch.Tensor:
    """3x3 feature unfolding: (B, C, H, W) -> (B, 9C, H, W), index c*9 + ky*3 + kx."""
    b, c, h, w = feat.shape
    return F.unfold(feat, 3, padding=1).view(b, c * 9, h, w)


def shifted_coords(coord: torch.Tensor, ry, rx, eps: float = 1e-6):
    """The four 2x2-neighbour lookup positions: coord shifted by (+-ry, +-rx) + eps,
    clamped to the open square. ``ry``/``rx`` are floats or (B, 1) tensors."""
    out = []
    for vy in (-1, 1):
        for vx in (-1, 1):
            c = coord.clone()
            c[:, :, 0] += vy * ry + eps
            c[:, :, 1] += vx * rx + eps
            c.clamp_(-1 + 1e-6, 1 - 1e-6)
            out.append(c)
    return out


def area_weights(rels: list[torch.Tensor]) -> torch.Tensor:
    """LIIF's local-ensemble weights of the four neighbours, in the order of
    :func:`shifted_coords`: each the area of the rectangle between the query and the
    diagonally opposite neighbour's centre over their sum (``rels``: (B, Q, 2) offsets
    in LR pixels) -> (B, Q, 4)."""
    areas = [(rel[..., 0] * rel[..., 1]).abs() + 1e-9 for rel in rels]
    total = torch.stack(areas).sum(dim=0)
    return torch.stack([area / total for area in reversed(areas)], dim=-1)


def area_blend(preds: list[torch.Tensor], rels: list[torch.Tensor]) -> torch.Tensor:
    """The four neighbours' (B, Q, D) predictions blended by :func:`area_weights`."""
    weights = area_weights(rels)
    out = 0
    for i, pred in enumerate(preds):
        out = out + pred * weights[..., i:i + 1]
    return out

"""LIIF's local implicit image function decoder (Chen et al., CVPR 2021).

An MLP maps (latent code, relative coordinate, cell) to RGB; with local ensemble the
four nearest latent codes each predict and are blended by the area of the opposite
sub-rectangle. Feature unfolding, local ensemble and cell decoding can each be
switched off, as in the LIIF paper's ablations.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .mlp import MLP
from .sampling import feature_coord, sample_nearest, shifted_coords, unfold3x3


class LIIFDecoder(nn.Module):
    def __init__(self, in_dim: int, hidden: Sequence[int] = (256, 256, 256, 256), out_dim: int = 3,
                 local_ensemble: bool = True, feat_unfold: bool = True, cell_decode: bool = True):
        super().__init__()
        self.in_dim = in_dim
        self.local_ensemble = local_ensemble
        self.feat_unfold = feat_unfold
        self.cell_decode = cell_decode
        feat_dim = in_dim * 9 if feat_unfold else in_dim
        self.imnet = MLP(feat_dim + 2 + (2 if cell_decode else 0), out_dim, tuple(hidden))

    def prepare(self, feat: torch.Tensor) -> dict:
        latent = unfold3x3(feat) if self.feat_unfold else feat
        return {"latent": latent, "feat_coord": feature_coord(feat)}

    def query(self, prep: dict, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        latent, feat_coord = prep["latent"], prep["feat_coord"]
        h, w = latent.shape[-2:]
        scale_hw = torch.tensor([h, w], dtype=coord.dtype, device=coord.device)
        if self.local_ensemble:
            positions = shifted_coords(coord, 1.0 / h, 1.0 / w)  # one LR pixel = 2/h
        else:
            positions = [coord.clamp(-1 + 1e-6, 1 - 1e-6)]
        preds, areas = [], []
        for c in positions:
            z = sample_nearest(latent, c)
            rel = (coord - sample_nearest(feat_coord, c)) * scale_hw
            inp = [z, rel]
            if self.cell_decode:
                inp.append(cell * scale_hw)
            preds.append(self.imnet(torch.cat(inp, dim=-1)))
            areas.append((rel[..., 0] * rel[..., 1]).abs() + 1e-9)
        if not self.local_ensemble:
            return preds[0]
        total = torch.stack(areas).sum(dim=0)
        # Each prediction is weighted by the area of the diagonally opposite rectangle.
        areas = [areas[3], areas[2], areas[1], areas[0]]
        out = 0
        for pred, area in zip(preds, areas):
            out = out + pred * (area / total).unsqueeze(-1)
        return out

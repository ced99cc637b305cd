"""LIIF's local implicit image function decoder (Chen et al., CVPR 2021).

An MLP maps (latent code, relative coordinate, cell) to RGB; with local ensemble the
four nearest latent codes each predict and are blended by the area of the opposite
sub-rectangle. Feature unfolding, local ensemble and cell decoding can each be
switched off, as in the LIIF paper's ablations.

``mode='fast'`` (default) computes the latent-code half of the MLP's first layer once
per LR pixel in ``prepare`` and only the small (rel, cell) half per query, with the
four neighbours batched; ``mode='reference'`` evaluates every layer per query and
neighbour, as LIIF's own code does (for benchmarks and tests).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .mlp import MLP
from .sampling import feature_coord, sample_nearest, shifted_coords, unfold3x3


class LIIFDecoder(nn.Module):
    def __init__(self, in_dim: int, hidden: Sequence[int] = (256, 256, 256, 256), out_dim: int = 3,
                 local_ensemble: bool = True, feat_unfold: bool = True, cell_decode: bool = True,
                 mode: str = "fast"):
        super().__init__()
        if mode not in ("fast", "reference"):
            raise ValueError(f"mode must be 'fast' or 'reference', not {mode!r}")
        self.in_dim = in_dim
        self.local_ensemble = local_ensemble
        self.feat_unfold = feat_unfold
        self.cell_decode = cell_decode
        self.mode = mode
        # Queries per chunk on the CPU in fast mode (see CiaoSRDecoder); None in reference
        # mode, which keeps the caller's chunks (LIIF's own code: 30000).
        self.cpu_chunk = 1024 if mode == "fast" else None
        self.latent_dim = in_dim * 9 if feat_unfold else in_dim
        self.imnet = MLP(self.latent_dim + 2 + (2 if cell_decode else 0), out_dim, tuple(hidden))

    def prepare(self, feat: torch.Tensor) -> dict:
        latent = unfold3x3(feat) if self.feat_unfold else feat
        prep = {"latent": latent, "feat_coord": feature_coord(feat)}
        if self.mode == "fast":
            first = self.imnet.layers[0]
            b, _, h, w = latent.shape
            prep["hidden"] = F.linear(latent.flatten(2).transpose(1, 2), first.weight[:, :self.latent_dim],
                                      first.bias).reshape(b * h * w, -1)
            prep["index"] = torch.arange(h * w, device=feat.device, dtype=torch.float32).view(1, 1, h, w).expand(b, 1, h, w)
        return prep

    def _positions(self, coord: torch.Tensor, h: int, w: int) -> list[torch.Tensor]:
        if self.local_ensemble:
            return shifted_coords(coord, 1.0 / h, 1.0 / w)  # one LR pixel = 2/h
        return [coord.clamp(-1 + 1e-6, 1 - 1e-6)]

    def _blend(self, preds: list, rels: list) -> torch.Tensor:
        if not self.local_ensemble:
            return preds[0]
        areas = [(rel[..., 0] * rel[..., 1]).abs() + 1e-9 for rel in rels]
        total = torch.stack(areas).sum(dim=0)
        # Each prediction is weighted by the area of the diagonally opposite rectangle.
        areas = [areas[3], areas[2], areas[1], areas[0]]
        out = 0
        for pred, area in zip(preds, areas):
            out = out + pred * (area / total).unsqueeze(-1)
        return out

    def query(self, prep: dict, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        if self.mode == "fast":
            return self._query_fast(prep, coord, cell)
        latent, feat_coord = prep["latent"], prep["feat_coord"]
        h, w = latent.shape[-2:]
        scale_hw = torch.tensor([h, w], dtype=coord.dtype, device=coord.device)
        preds, rels = [], []
        for c in self._positions(coord, h, w):
            z = sample_nearest(latent, c)
            rel = (coord - sample_nearest(feat_coord, c)) * scale_hw
            inp = [z, rel]
            if self.cell_decode:
                inp.append(cell * scale_hw)
            preds.append(self.imnet(torch.cat(inp, dim=-1)))
            rels.append(rel)
        return self._blend(preds, rels)

    def _query_fast(self, prep: dict, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        latent, feat_coord = prep["latent"], prep["feat_coord"]
        b, _, h, w = latent.shape
        nq = coord.shape[1]
        scale_hw = torch.tensor([h, w], dtype=coord.dtype, device=coord.device)
        positions = self._positions(coord, h, w)
        n = len(positions)
        idx = torch.stack([sample_nearest(prep["index"], c)[..., 0] for c in positions], dim=2).long()
        centres = feat_coord[0].flatten(1).t()  # (HW, 2)
        rel = (coord.unsqueeze(2) - centres[idx]) * scale_hw  # (B, Q, n, 2)
        pos = [rel]
        if self.cell_decode:
            pos.append((cell * scale_hw).unsqueeze(2).expand(-1, -1, n, -1))
        pos = torch.cat(pos, dim=-1).reshape(b * nq * n, -1)
        rows = (idx + (torch.arange(b, device=coord.device) * (h * w)).view(b, 1, 1)).reshape(-1)
        first = self.imnet.layers[0]
        hid = torch.addmm(prep["hidden"][rows], pos, first.weight[:, self.latent_dim:].t())
        hid = hid.relu_() if not torch.is_grad_enabled() else F.relu(hid)
        for layer in list(self.imnet.layers)[2:]:
            hid = layer(hid)
        out = hid.view(b, nq, n, -1)
        return self._blend([out[:, :, i] for i in range(n)], [rel[:, :, i] for i in range(n)])

"""CiaoSR's implicit attention decoder (Cao et al., CVPR 2023).

For each query, attention over the 2x2 neighbouring latent codes: the query is the raw
3x3-unfolded feature of the LR pixel containing it; keys and values are the neighbours'
unfolded features (values also carry the non-local feature), each multiplicatively
modulated by an MLP of (feature, relative coordinate, cell). The attended value is
decoded to RGB by ``imnet_q``. See shared/docs/ciaosr-model.md.

Ablation switches: ``non_local=False`` drops the non-local feature from the values;
``attention='mlp'`` replaces the q.k softmax by weights that an MLP predicts from
(key feature, relative coordinate, cell), softmaxed over the 4 neighbours.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .mlp import MLP
from .nonlocal_attention import CrossScaleAttention
from .sampling import feature_coord, sample_nearest, shifted_coords, unfold3x3


class CiaoSRDecoder(nn.Module):
    def __init__(self, in_dim: int, hidden: Sequence[int] = (256, 256, 256, 256), out_dim: int = 3,
                 non_local: bool = True, attention: str = "dot"):
        super().__init__()
        if attention not in ("dot", "mlp"):
            raise ValueError(f"attention must be 'dot' or 'mlp', not {attention!r}")
        self.in_dim = in_dim
        self.non_local = non_local
        self.attention = attention
        key_dim = 9 * in_dim
        value_dim = 10 * in_dim if non_local else 9 * in_dim
        hidden = tuple(hidden)
        self.imnet_q = MLP(value_dim, out_dim, hidden)
        if attention == "dot":
            self.imnet_k = MLP(key_dim + 4, key_dim, hidden)
        else:
            self.imnet_a = MLP(key_dim + 4, 1, hidden)
        self.imnet_v = MLP(value_dim + 4, value_dim, hidden)
        if non_local:
            self.cs_attn = CrossScaleAttention(in_dim)

    # --- per LR pixel ---------------------------------------------------------
    def prepare(self, feat: torch.Tensor, nonlocal_feat: torch.Tensor | None = None) -> dict:
        """Unfolding and the non-local attention, once per image (or tile).

        ``nonlocal_feat`` may be given when it was computed elsewhere (e.g. in tiles).
        """
        keys = unfold3x3(feat)
        values = keys
        if self.non_local:
            if nonlocal_feat is None:
                nonlocal_feat = self.cs_attn(feat)
            values = torch.cat([keys, nonlocal_feat], dim=1)
        return {"keys": keys, "values": values, "feat_coord": feature_coord(feat)}

    # --- per query ------------------------------------------------------------
    def query(self, prep: dict, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        keys, values, feat_coord = prep["keys"], prep["values"], prep["feat_coord"]
        h, w = keys.shape[-2:]
        scale_hw = torch.tensor([h, w], dtype=coord.dtype, device=coord.device)
        # Neighbour shift (1 - cell) / (size - 1) from the first query's cell, per image.
        ry = (1 - cell[:, :1, 0]) / max(h - 1, 1)
        rx = (1 - cell[:, :1, 1]) / max(w - 1, 1)
        q = sample_nearest(keys, coord)  # (B, Q, 9C)
        cl = cell * scale_hw
        logits, vals = [], []
        for c in shifted_coords(coord, ry, rx):
            k = sample_nearest(keys, c)
            v = sample_nearest(values, c)
            rel = (coord - sample_nearest(feat_coord, c)) * scale_hw
            v_hat = v * self.imnet_v(torch.cat([v, rel, cl], dim=-1))
            if self.attention == "dot":
                k_hat = k * self.imnet_k(torch.cat([k, rel, cl], dim=-1))
                logits.append((q * k_hat).sum(-1))
            else:
                logits.append(self.imnet_a(torch.cat([k, rel, cl], dim=-1))[..., 0])
            vals.append(v_hat)
        attn = torch.softmax(torch.stack(logits, dim=-1), dim=-1)  # (B, Q, 4)
        x = (torch.stack(vals, dim=-1) * attn.unsqueeze(-2)).sum(-1)
        return self.imnet_q(x)

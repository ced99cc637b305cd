"""LIIF's local implicit image function decoder (Chen et al., CVPR 2021).

An MLP maps (latent code, relative coordinate, cell) to RGB; with local ensemble the
four nearest latent codes each predict and are blended by the area of the opposite
sub-rectangle. Feature unfolding, local ensemble and cell decoding can each be
switched off, as in the LIIF paper's ablations.

The latent-code half of the MLP's first layer is computed once per LR pixel in
``prepare`` and only the small (rel, cell) half per query, with the four neighbours
batched. With local ensemble the area blend, linear, is applied to the last hidden
layer's activations, so the last layer runs once per query instead of once per
neighbour (equal up to float rounding, as the weights sum to 1). LIIF's own
computation (every layer per query and neighbour) is
:func:`ciaosr.decoders.reference.liif_query`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..models.registry import register_decoder
from .base import Decoder
from .mlp import MLP, first_layer, run_layers
from .sampling import area_blend, area_weights, from_pixel_tables, pixel_tables, sample_nearest, shifted_coords
from .workspace import Workspace, autocast_off


@register_decoder("liif", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), residual=False,
                  description="local implicit image function")
class LIIFDecoder(Decoder):
    cpu_chunk = 1024  # see Decoder.cpu_chunk (docs/performance.md)
    official_prefixes = ("imnet.",)
    liif_name = "liif"

    @classmethod
    def official_args(cls, sd: dict, spec_args: dict | None = None) -> dict | None:
        first = sd.get("imnet.layers.0.weight")
        # MetaSR's and ITSRN's first layers take coordinates only (3 and 4 inputs); LTE's has
        # coef; LM-LIIF's and LM-LTE's have a hypernetwork
        if first is None or first.shape[-1] <= 4 or "coef.weight" in sd or "hypernet.layers.0.weight" in sd:
            return None
        args = spec_args or {}
        imnet_args = (args.get("imnet_spec") or {}).get("args", {}) or {}
        out = {key: bool(args.get(key, True)) for key in ("local_ensemble", "feat_unfold", "cell_decode")}
        out["hidden"] = list(imnet_args.get("hidden_list", [256, 256, 256, 256]))
        out["out_dim"] = int(imnet_args.get("out_dim", 3))
        return out

    def __init__(self, in_dim: int, hidden: Sequence[int] = (256, 256, 256, 256), out_dim: int = 3,
                 local_ensemble: bool = True, feat_unfold: bool = True, cell_decode: bool = True):
        super().__init__(in_dim)
        self.local_ensemble = local_ensemble
        self.feat_unfold = feat_unfold
        self.cell_decode = cell_decode
        self.latent_dim = in_dim * 9 if feat_unfold else in_dim
        self.imnet = MLP(self.latent_dim + 2 + (2 if cell_decode else 0), out_dim, tuple(hidden))

    def prepare_bytes(self, pixels: int) -> int:
        # No unfolded map: the first layer's per-pixel half (hidden floats per pixel),
        # as the convolution's output and its row-major copy. Measured peak of encode +
        # prepare with EDSR-baseline: 1.3 KB per LR pixel, estimated (with the encoder's
        # term) 3.5 KB.
        return 8 * pixels * self.imnet.layers[0].out_features

    def prepare(self, feat: torch.Tensor) -> dict:
        first = self.imnet.layers[0]
        b, c, h, w = feat.shape
        w_feat = first.weight[:, :self.latent_dim]
        if self.feat_unfold:
            # The first layer on the 3x3-unfolded code (index c*9 + ky*3 + kx, zeros
            # outside) is a 3x3 convolution of the features: no 9C-wide map is made.
            hidden = F.conv2d(feat, w_feat.reshape(-1, c, 3, 3), first.bias, padding=1)
            hidden = hidden.permute(0, 2, 3, 1)
        else:
            hidden = F.linear(feat.permute(0, 2, 3, 1), w_feat, first.bias)
        return self.from_tables({"hidden": hidden.reshape(b, h * w, -1)}, (h, w))

    def tables(self, prep: dict) -> dict[str, torch.Tensor]:
        return pixel_tables(prep, ("hidden",))

    def from_tables(self, tables: dict[str, torch.Tensor], size: tuple[int, int]) -> dict:
        return {**from_pixel_tables(tables, size), "workspace": Workspace()}

    def positions(self, coord: torch.Tensor, h: int, w: int) -> list[torch.Tensor]:
        """Where the latent codes are looked up: the four neighbours, or the nearest."""
        if self.local_ensemble:
            return shifted_coords(coord, 1.0 / h, 1.0 / w)  # one LR pixel = 2/h
        return [coord.clamp(-1 + 1e-6, 1 - 1e-6)]

    def blend(self, preds: list, rels: list) -> torch.Tensor:
        return area_blend(preds, rels) if self.local_ensemble else preds[0]

    def query(self, prep: dict, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        b, (h, w) = prep["index"].shape[0], prep["size"]
        nq = coord.shape[1]
        scale_hw = torch.tensor([h, w], dtype=coord.dtype, device=coord.device)
        positions = self.positions(coord, h, w)
        n = len(positions)
        idx = torch.stack([sample_nearest(prep["index"], c)[..., 0] for c in positions], dim=2).long()
        rel = (coord.unsqueeze(2) - prep["centres"][idx]) * scale_hw  # (B, Q, n, 2)
        pos = [rel]
        if self.cell_decode:
            pos.append((cell * scale_hw).unsqueeze(2).expand(-1, -1, n, -1))
        pos = torch.cat(pos, dim=-1).reshape(b * nq * n, -1)
        rows = (idx + (torch.arange(b, device=coord.device) * (h * w)).view(b, 1, 1)).reshape(-1)
        ws = prep["workspace"]
        hid = first_layer(prep["hidden"], rows, pos, self.imnet.layers[0].weight[:, self.latent_dim:], ws)
        hid = run_layers(self.imnet, hid, 1, -1, ws).float()  # activations up to the last hidden layer
        # Blend, then the last (linear) layer once per query; both in float32 even under
        # autocast (bf16): they are cheap, and the output keeps float32 steps.
        with autocast_off(coord.device):
            if self.local_ensemble:
                weights = area_weights([rel[:, :, i] for i in range(n)]).reshape(b * nq, 1, n)
                hid = torch.bmm(weights, hid.view(b * nq, n, -1)).view(b * nq, -1)
            return self.imnet.layers[-1](hid).view(b, nq, -1)

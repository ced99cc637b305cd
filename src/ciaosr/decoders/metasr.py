"""MetaSR's meta-upscale module as a continuous decoder (Hu et al., CVPR 2019), in the form
the LIIF repository (``models/misc.py``, registered as ``metasr``) trains and evaluates it.

For a query at ``coord`` with cell ``(c_row, c_col)``:

- the LR pixel is found at the query's top-left corner, ``coord - cell / 2`` (nudged by
  1e-6 and clamped), with a nearest lookup;
- its 3x3-unfolded feature ``u`` (9C values, channel-major ``c*9 + ky*3 + kx``) is the
  input of the per-query linear map;
- the position input is ``rel = (coord - cell/2 - corner) * (H/2, W/2)``, where
  ``corner`` is that LR pixel's top-left corner: MetaSR's fractional offset of the output
  pixel inside its LR pixel, in LR pixels (in [0, 1)); the scale input is
  ``c_row * H / 2`` (= 1 / s_row);
- the weight-prediction MLP ``imnet`` maps ``(rel_row, rel_col, 1/s_row)`` to a
  ``9C x out_dim`` matrix ``W`` (row-major: element ``(j, o)`` at ``j*out_dim + o``), and
  the prediction is ``u @ W``.

Asymmetric scales: the official module feeds only the ROW scale (``cell[..., 0]``); the
column scale enters only through the corner offset. That is kept here so official
weights (MLP input width 3) load and behave as trained.

Around the decoder (``ImplicitSRModel`` settings): input normalisation
``(lr - 0.5) / 0.5``, no global residual, no cell clipping at large scales (LIIF's own
``test.py`` does not clip).

Parameter names follow the official state dict: ``imnet.layers.0.{weight,bias}``
(256 x 3) and ``imnet.layers.2.{weight,bias}`` (27C x 256) for the official
``hidden_list: [256]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from ..models.registry import register_decoder
from .base import Decoder
from .mlp import MLP
from .sampling import feature_coord, sample_nearest, unfold3x3


@register_decoder("metasr", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), residual=False,
                  description="meta-upscale")
class MetaSRDecoder(Decoder):
    """Meta-upscale decoder. ``in_dim`` is the encoder's channel count C; ``hidden`` is the
    width (or list of widths) of the weight-prediction MLP's hidden layers."""

    def __init__(self, in_dim: int, hidden: int | Sequence[int] = 256, out_dim: int = 3):
        super().__init__(in_dim)
        self.out_dim = out_dim
        widths = (hidden,) if isinstance(hidden, int) else tuple(hidden)
        self.imnet = MLP(3, in_dim * 9 * out_dim, widths)

    cpu_chunk = 512  # see Decoder.cpu_chunk; measured best for this decoder (docs/performance.md)
    official_prefixes = ("imnet.",)
    liif_name = "metasr"

    @classmethod
    def official_args(cls, sd: dict, spec_args: dict | None = None) -> dict | None:
        """The LIIF code base's MetaSR: an MLP from (rel, 1/s) (3 inputs) to a 9C x 3
        matrix; the official class hard-codes ``out_dim=3``."""
        first = sd.get("imnet.layers.0.weight")
        if first is None or first.shape[-1] != 3:
            return None
        weights = sorted((k for k in sd if k.startswith("imnet.layers.") and k.endswith(".weight")),
                         key=lambda k: int(k.split(".")[2]))
        return {"hidden": tuple(int(sd[k].shape[0]) for k in weights[:-1]), "out_dim": 3}

    # --- per-LR-pixel work ---------------------------------------------------
    def prepare(self, feat: Tensor) -> dict[str, Tensor]:
        """3x3-unfolded features and the LR pixel corners, packed into one
        (B, 9C + 2, H, W) table so a query needs a single lookup."""
        h, w = feat.shape[-2:]
        half_pixel = torch.tensor([1 / h, 1 / w], dtype=feat.dtype, device=feat.device).view(1, 2, 1, 1)
        corners = feature_coord(feat, feat.dtype) - half_pixel  # each LR pixel's top-left corner
        return {"table": torch.cat([unfold3x3(feat), corners], dim=1)}

    # --- per-query work ------------------------------------------------------
    def query(self, prep: Mapping[str, Tensor], coord: Tensor, cell: Tensor) -> Tensor:
        table = prep["table"]
        h, w = table.shape[-2:]
        d = table.shape[1] - 2  # 9C
        bs, q = coord.shape[:2]
        coord = coord.to(table.dtype)
        cell = cell.to(table.dtype)

        corner_q = coord - cell / 2
        looked = sample_nearest(table, (corner_q + 1e-6).clamp(-1 + 1e-6, 1 - 1e-6))
        q_feat = looked[..., :d]
        corner = looked[..., d:]

        rel = (corner_q - corner) * torch.tensor([h / 2, w / 2], dtype=coord.dtype, device=coord.device)
        r_rev = cell[..., :1] * (h / 2)  # 1 / s_row (the official code uses the row axis only)
        weights = self.imnet(torch.cat([rel, r_rev], dim=-1).reshape(bs * q, 3))
        weights = weights.view(bs * q, d, self.out_dim)
        # contiguous: bmm on a strided view falls back to one tiny product per query
        pred = torch.bmm(q_feat.reshape(bs * q, 1, d).contiguous(), weights)
        return pred.view(bs, q, self.out_dim)

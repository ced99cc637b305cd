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
import torch.nn.functional as F
from torch import Tensor, nn

from ..coords import axis_centres
from ..errors import CiaosrError
from .mlp import MLP
from .official_keys import decoder_part, model_spec as spec_of

_EPS_SHIFT = 1e-6


def _corner_map(feat: Tensor) -> Tensor:
    """(B, 2, H, W) map of the (row, col) coordinate of every LR pixel's top-left corner."""
    b, _, h, w = feat.shape
    rows = axis_centres(h, feat.device, feat.dtype) - (2 / h) / 2
    cols = axis_centres(w, feat.device, feat.dtype) - (2 / w) / 2
    grid = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=0)
    return grid.unsqueeze(0).expand(b, 2, h, w)


class MetaSRDecoder(nn.Module):
    """Meta-upscale decoder. ``in_dim`` is the encoder's channel count C; ``hidden`` is the
    width (or list of widths) of the weight-prediction MLP's hidden layers."""

    def __init__(self, in_dim: int, hidden: int | Sequence[int] = 256, out_dim: int = 3):
        super().__init__()
        self.in_dim = in_dim
        self.out_dim = out_dim
        widths = (hidden,) if isinstance(hidden, int) else tuple(hidden)
        self.imnet = MLP(3, in_dim * 9 * out_dim, widths)

    # Queries per chunk on the CPU, where small chunks run fastest (see
    # CiaoSRDecoder.cpu_chunk; 512 measured best for this decoder, docs/performance.md).
    cpu_chunk = 512

    # --- per-LR-pixel work ---------------------------------------------------
    def prepare(self, feat: Tensor) -> dict[str, Tensor]:
        """3x3-unfolded features and the LR pixel corners, packed into one
        (B, 9C + 2, H, W) table so a query needs a single lookup."""
        b, c, h, w = feat.shape
        unfolded = F.unfold(feat, 3, padding=1).view(b, c * 9, h, w)
        return {"table": torch.cat([unfolded, _corner_map(feat)], dim=1)}

    # --- per-query work ------------------------------------------------------
    def query(self, prep: Mapping[str, Tensor], coord: Tensor, cell: Tensor) -> Tensor:
        table = prep["table"]
        h, w = table.shape[-2:]
        d = table.shape[1] - 2  # 9C
        bs, q = coord.shape[:2]
        coord = coord.to(table.dtype)
        cell = cell.to(table.dtype)

        corner_q = coord - cell / 2
        lookup = (corner_q + _EPS_SHIFT).clamp(-1 + 1e-6, 1 - 1e-6)
        looked = F.grid_sample(table, lookup.flip(-1).unsqueeze(1), mode="nearest",
                               align_corners=False)[:, :, 0, :].permute(0, 2, 1)
        q_feat = looked[..., :d]
        corner = looked[..., d:]

        rel = (corner_q - corner) * coord.new_tensor([h / 2, w / 2])
        r_rev = cell[..., :1] * (h / 2)  # 1 / s_row (the official code uses the row axis only)
        weights = self.imnet(torch.cat([rel, r_rev], dim=-1).reshape(bs * q, 3))
        weights = weights.view(bs * q, d, self.out_dim)
        # contiguous: bmm on a strided view falls back to one tiny product per query
        pred = torch.bmm(q_feat.reshape(bs * q, 1, d).contiguous(), weights)
        return pred.view(bs, q, self.out_dim)

    def forward(self, feat: Tensor, coord: Tensor, cell: Tensor) -> Tensor:
        return self.query(self.prepare(feat), coord, cell)


# --- official checkpoint helpers ---------------------------------------------
def official_state_dict_to_decoder(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Decoder part of an official (LIIF-repo) MetaSR state dict: see :func:`official_keys.decoder_part`."""
    return decoder_part(sd, ("imnet.",), "MetaSR")


def args_from_official(model_spec: Mapping, in_dim: int | None = None) -> dict:
    """Constructor kwargs of :class:`MetaSRDecoder` from an official ``{'name': 'metasr',
    'args': {'encoder_spec': ...}}`` spec (or the whole checkpoint). The official class
    hard-codes ``hidden_list=[256]`` and ``out_dim=3``; ``in_dim`` is the encoder width:
    pass it, or it is read from the last imnet layer of ``sd`` when present."""
    spec = spec_of(model_spec)
    if spec.get("name") != "metasr":
        raise CiaosrError(f"not a MetaSR model spec: name={spec.get('name')!r}")
    kwargs: dict = {"hidden": (256,), "out_dim": 3}
    sd = spec.get("sd")
    if sd is not None:
        weights = sorted(
            (k for k in sd if k.startswith("imnet.layers.") and k.endswith(".weight")),
            key=lambda k: int(k.split(".")[2]),
        )
        if weights:
            kwargs["hidden"] = tuple(int(sd[k].shape[0]) for k in weights[:-1])
            if in_dim is None:
                in_dim = int(sd[weights[-1]].shape[0]) // (9 * 3)
    if in_dim is not None:
        kwargs["in_dim"] = int(in_dim)
    return kwargs

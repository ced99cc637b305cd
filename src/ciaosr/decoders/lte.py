"""LTE: the Local Texture Estimator decoder (Lee & Jin, CVPR 2022).

For a query at ``coord`` the decoder looks at the four LR pixels around it (LIIF's local
ensemble) and, for each, builds a Fourier feature of the query's position relative to
that pixel's centre:

- ``coef = conv3x3(feat)`` (amplitudes) and ``freq = conv3x3(feat)`` (frequencies), both
  ``hidden_dim`` channels, computed once per LR pixel in :meth:`LTEDecoder.prepare`;
- the frequencies are read as ``hidden_dim/2`` 2-vectors (channels ``2k`` and ``2k+1``
  are the row and column components of frequency ``k``) and projected onto the relative
  coordinate ``rel = (coord - centre) * (H, W)``;
- a phase ``phase(cell * (H, W))`` (a bias-free Linear 2 -> hidden_dim/2) is added;
- the feature ``coef * cat[cos(pi x), sin(pi x)]`` goes through the MLP ``imnet`` to RGB.

The four predictions are blended with LIIF's area weights (each weighted by the area of
the rectangle spanned by the query and the diagonally opposite neighbour's centre).

What the official code does around the decoder (``ImplicitSRModel`` must be built to
match, this module does not do it):

- input normalisation ``(lr - 0.5) / 0.5`` (and the same for the target);
- a global residual: the official ``LTE.query_rgb`` adds the bilinear sample
  (``padding_mode='border'``, ``align_corners=False``) of the *normalised* input at each
  query, so the LTE model wrapper needs ``residual=True``. (LIIF and MetaSR have none.)

Test-time cell clipping: the official ``test.py`` multiplies the cell by
``max(s / scale_max, 1)`` with ``scale_max = 4`` (the largest training scale), so at
scales above the training range the network sees the x4 cell. Here that is the
``max_train_scale`` knob; it is applied only in eval mode (``decoder.eval()``), never
while training, and ``None`` disables it. The scale is read per axis from the cell itself
(``s = 2 / (cell * H)``, i.e. output size / input size), so asymmetric scales are clipped
per axis. For the official benchmark setting (integer scale, output exactly ``s`` times
the input) this equals the official ``cell * max(s / 4, 1)``.

Parameter names follow the official checkpoint (``coef.*``, ``freq.*``,
``phase.weight``, ``imnet.layers.*``), so the decoder part of an official
``{'model': {'name': 'lte', 'args': ..., 'sd': ...}}`` loads directly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from ..errors import CiaosrError
from ..models.registry import register_decoder
from .base import Decoder
from .mlp import MLP
from .sampling import area_blend, feature_coord, sample_nearest, shifted_coords


def scaled_cell(cell: Tensor, h: int, w: int, max_train_scale: float | None) -> Tensor:
    """The cell times ``(H, W)`` (= 2 / scale per axis, the cell being 2 / output size),
    clipped to the training range ``max_train_scale`` when given (the official test
    scripts' cell clipping; decoders pass None while training)."""
    rel_cell = cell * torch.tensor([h, w], dtype=cell.dtype, device=cell.device)  # not new_tensor: ciaosr.onnx
    if max_train_scale is not None:
        # cell * max(s / s_max, 1) with s = 2 / rel_cell  <=>  max(rel_cell, 2 / s_max);
        # a 1e-5 relative margin keeps s == s_max (up to float error) untouched
        floor = 2.0 / max_train_scale
        rel_cell = torch.where(rel_cell < floor * (1 - 1e-5), rel_cell.new_tensor(floor), rel_cell)
    return rel_cell


@register_decoder("lte", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), residual=True,
                  description="local texture estimator")
class LTEDecoder(Decoder):
    """LTE implicit decoder. ``in_dim`` is the encoder's channel count C.

    ``mlp_hidden`` defaults to the official configs' ``hidden_list: [256, 256, 256]``
    (``imnet.layers.{0,2,4,6}``); the MLP input width is ``hidden_dim``.
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int = 256,
        mlp_hidden: Sequence[int] = (256, 256, 256),
        out_dim: int = 3,
        max_train_scale: float | None = 4.0,
    ):
        super().__init__(in_dim)
        if hidden_dim % 2:
            raise CiaosrError(f"LTE hidden_dim must be even, got {hidden_dim}")
        self.hidden_dim = hidden_dim
        self.out_dim = out_dim
        self.max_train_scale = max_train_scale
        self.coef = nn.Conv2d(in_dim, hidden_dim, 3, padding=1)
        self.freq = nn.Conv2d(in_dim, hidden_dim, 3, padding=1)
        self.phase = nn.Linear(2, hidden_dim // 2, bias=False)
        self.imnet = MLP(hidden_dim, out_dim, tuple(mlp_hidden))

    cpu_chunk = 512  # see Decoder.cpu_chunk; measured best for this decoder (docs/performance.md)
    official_prefixes = ("coef.", "freq.", "phase.", "imnet.")
    liif_name = "lte"

    @classmethod
    def official_args(cls, sd: dict, spec_args: dict | None = None) -> dict | None:
        """From the official spec's ``hidden_dim`` and ``imnet_spec`` (which the file
        must have: the MLP widths are not all visible in the weights)."""
        if "coef.weight" not in sd or "hypernet.layers.0.weight" in sd:  # LM-LTE's has a hypernetwork
            return None
        args = spec_args or {}
        imnet = args.get("imnet_spec")
        if not imnet or imnet.get("name") != "mlp":
            raise CiaosrError("LTE checkpoint without an 'mlp' imnet_spec in its model args")
        imnet_args = imnet.get("args", {})
        return {"hidden_dim": int(args.get("hidden_dim", 256)),
                "mlp_hidden": tuple(int(v) for v in imnet_args["hidden_list"]),
                "out_dim": int(imnet_args.get("out_dim", 3))}

    # --- per-LR-pixel work ---------------------------------------------------
    def prepare(self, feat: Tensor) -> dict[str, Tensor]:
        """Amplitude and frequency maps plus the LR pixel centres, packed into one
        (B, 2*hidden_dim + 2, H, W) table so each neighbour needs a single lookup."""
        table = torch.cat([self.coef(feat), self.freq(feat), feature_coord(feat, feat.dtype)], dim=1)
        return {"table": table}

    # --- per-query work ------------------------------------------------------
    def _rel_cell(self, cell: Tensor, h: int, w: int) -> Tensor:
        return scaled_cell(cell, h, w, None if self.training else self.max_train_scale)

    def query(self, prep: Mapping[str, Tensor], coord: Tensor, cell: Tensor) -> Tensor:
        table = prep["table"]
        h, w = table.shape[-2:]
        hd = self.hidden_dim
        bs, q = coord.shape[:2]
        coord = coord.to(table.dtype)
        cell = cell.to(table.dtype)
        scale_hw = torch.tensor([h, w], dtype=coord.dtype, device=coord.device)  # not new_tensor: ciaosr.onnx

        # the phase depends on the cell only: the same for all four neighbours
        rel_cell = self._rel_cell(cell, h, w)
        phase = self.phase(rel_cell.reshape(bs * q, 2)).view(bs, q, hd // 2)

        preds, rels = [], []
        for shifted in shifted_coords(coord, 1.0 / h, 1.0 / w):  # half an LR pixel, as LIIF
            looked = sample_nearest(table, shifted)
            q_coef = looked[..., :hd]
            q_freq = looked[..., hd:2 * hd]
            rel = (coord - looked[..., 2 * hd:]) * scale_hw  # from the neighbour's centre, in LR pixels
            # frequency k has components (channel 2k, channel 2k+1) = (row, col)
            x = (q_freq.view(bs, q, hd // 2, 2) * rel.unsqueeze(-2)).sum(dim=-1)
            x = x + phase
            x = torch.cat([torch.cos(math.pi * x), torch.sin(math.pi * x)], dim=-1)
            preds.append(self.imnet((q_coef * x).reshape(bs * q, hd)).view(bs, q, -1))
            rels.append(rel)
        return area_blend(preds, rels)

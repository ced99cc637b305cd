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
``{'model': {'name': 'lte', 'args': ..., 'sd': ...}}`` loads directly; see
:func:`official_state_dict_to_decoder` and :func:`args_from_official`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..coords import axis_centres
from ..errors import CiaosrError
from .mlp import MLP
from .official_keys import decoder_part, model_spec as spec_of

_EPS_SHIFT = 1e-6  # LIIF's nudge off pixel borders for the neighbour lookups
_AREA_EPS = 1e-9


def _centre_map(feat: Tensor) -> Tensor:
    """(B, 2, H, W) map of the (row, col) centre coordinate of every LR pixel."""
    b, _, h, w = feat.shape
    rows = axis_centres(h, feat.device, feat.dtype)
    cols = axis_centres(w, feat.device, feat.dtype)
    grid = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=0)
    return grid.unsqueeze(0).expand(b, 2, h, w)


def _nearest(table: Tensor, coord: Tensor) -> Tensor:
    """Nearest-neighbour lookup of a (B, D, H, W) table at (B, Q, 2) (row, col) coords
    -> (B, Q, D). Uses grid_sample itself so border ties round as in the official code."""
    out = F.grid_sample(table, coord.flip(-1).unsqueeze(1), mode="nearest", align_corners=False)
    return out[:, :, 0, :].permute(0, 2, 1)


class LTEDecoder(nn.Module):
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
        super().__init__()
        if hidden_dim % 2:
            raise CiaosrError(f"LTE hidden_dim must be even, got {hidden_dim}")
        self.in_dim = in_dim
        self.hidden_dim = hidden_dim
        self.out_dim = out_dim
        self.max_train_scale = max_train_scale
        self.coef = nn.Conv2d(in_dim, hidden_dim, 3, padding=1)
        self.freq = nn.Conv2d(in_dim, hidden_dim, 3, padding=1)
        self.phase = nn.Linear(2, hidden_dim // 2, bias=False)
        self.imnet = MLP(hidden_dim, out_dim, tuple(mlp_hidden))

    # Queries per chunk on the CPU, where small chunks run fastest (see
    # CiaoSRDecoder.cpu_chunk; 512 measured best for this decoder, docs/performance.md).
    cpu_chunk = 512

    # --- per-LR-pixel work ---------------------------------------------------
    def prepare(self, feat: Tensor) -> dict[str, Tensor]:
        """Amplitude and frequency maps plus the LR pixel centres, packed into one
        (B, 2*hidden_dim + 2, H, W) table so each neighbour needs a single lookup."""
        table = torch.cat([self.coef(feat), self.freq(feat), _centre_map(feat)], dim=1)
        return {"table": table}

    # --- per-query work ------------------------------------------------------
    def _rel_cell(self, cell: Tensor, h: int, w: int) -> Tensor:
        """The cell times ``(H, W)`` (= 2 / scale per axis, the cell being 2 / output
        size), clipped to the training range in eval mode."""
        rel_cell = cell * cell.new_tensor([h, w])
        if self.max_train_scale is not None and not self.training:
            # cell * max(s / s_max, 1) with s = 2 / rel_cell  <=>  max(rel_cell, 2 / s_max);
            # a 1e-5 relative margin keeps s == s_max (up to float error) untouched
            floor = 2.0 / self.max_train_scale
            rel_cell = torch.where(rel_cell < floor * (1 - 1e-5), rel_cell.new_tensor(floor), rel_cell)
        return rel_cell

    def query(self, prep: Mapping[str, Tensor], coord: Tensor, cell: Tensor) -> Tensor:
        table = prep["table"]
        h, w = table.shape[-2:]
        hd = self.hidden_dim
        bs, q = coord.shape[:2]
        coord = coord.to(table.dtype)
        cell = cell.to(table.dtype)
        scale_hw = coord.new_tensor([h, w])

        # the phase depends on the cell only: the same for all four neighbours
        rel_cell = self._rel_cell(cell, h, w)
        phase = self.phase(rel_cell.reshape(bs * q, 2)).view(bs, q, hd // 2)

        r_row, r_col = 1.0 / h, 1.0 / w  # half an LR pixel, as LIIF
        preds, areas = [], []
        for v_row in (-1, 1):
            for v_col in (-1, 1):
                shifted = coord.clone()
                shifted[..., 0] += v_row * r_row + _EPS_SHIFT
                shifted[..., 1] += v_col * r_col + _EPS_SHIFT
                shifted.clamp_(-1 + 1e-6, 1 - 1e-6)
                looked = _nearest(table, shifted)
                q_coef = looked[..., :hd]
                q_freq = looked[..., hd:2 * hd]
                centre = looked[..., 2 * hd:]
                rel = (coord - centre) * scale_hw  # (B, Q, 2) in LR pixels

                # frequency k has components (channel 2k, channel 2k+1) = (row, col)
                x = (q_freq.view(bs, q, hd // 2, 2) * rel.unsqueeze(-2)).sum(dim=-1)
                x = x + phase
                x = torch.cat([torch.cos(math.pi * x), torch.sin(math.pi * x)], dim=-1)
                pred = self.imnet((q_coef * x).reshape(bs * q, hd)).view(bs, q, -1)
                preds.append(pred)
                areas.append(torch.abs(rel[..., 0] * rel[..., 1]) + _AREA_EPS)

        total = torch.stack(areas).sum(dim=0)
        out = 0
        # each prediction is weighted by the area of the diagonally opposite neighbour
        for pred, area in zip(preds, reversed(areas)):
            out = out + pred * (area / total).unsqueeze(-1)
        return out

    def forward(self, feat: Tensor, coord: Tensor, cell: Tensor) -> Tensor:
        return self.query(self.prepare(feat), coord, cell)


# --- official checkpoint helpers ---------------------------------------------
_DECODER_PREFIXES = ("coef.", "freq.", "phase.", "imnet.")


def official_state_dict_to_decoder(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Decoder part of an official LTE state dict: see :func:`official_keys.decoder_part`."""
    return decoder_part(sd, _DECODER_PREFIXES, "LTE")


def args_from_official(model_spec: Mapping, in_dim: int | None = None) -> dict:
    """Constructor kwargs of :class:`LTEDecoder` from an official ``{'name': 'lte',
    'args': {...}}`` spec (or the whole checkpoint). ``in_dim`` (the encoder width) is not
    part of the spec: pass it, or it is read from ``sd['coef.weight']`` when present."""
    spec = spec_of(model_spec)
    if spec.get("name") != "lte":
        raise CiaosrError(f"not an LTE model spec: name={spec.get('name')!r}")
    args = spec.get("args", {})
    imnet = args.get("imnet_spec")
    if not imnet or imnet.get("name") != "mlp":
        raise CiaosrError("LTE spec needs an 'mlp' imnet_spec")
    imnet_args = imnet.get("args", {})
    kwargs = {
        "hidden_dim": int(args.get("hidden_dim", 256)),
        "mlp_hidden": tuple(int(v) for v in imnet_args["hidden_list"]),
        "out_dim": int(imnet_args.get("out_dim", 3)),
    }
    if in_dim is None and "sd" in spec:
        key = next((k for k in spec["sd"] if k.endswith("coef.weight")), None)
        if key is not None:
            in_dim = int(spec["sd"][key].shape[1])
    if in_dim is not None:
        kwargs["in_dim"] = int(in_dim)
    return kwargs

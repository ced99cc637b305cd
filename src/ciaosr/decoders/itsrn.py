"""ITSRN's implicit transformer decoder (Yang et al., NeurIPS 2021), as the official code
(codyshen0000/ITSRN, ``models/ITNSR.py``, registered there as ``ITNSR``) computes it;
docs/itsrn-model.md describes it layer by layer and where the paper differs.

For a query at ``coord`` with cell ``(c_row, c_col)`` and each of its four neighbouring
LR pixels (LIIF's 2x2 local ensemble, shifted by ITSRN's own offset, :func:`itsrn_shift`):

- ``rel = (coord - centre) * (H, W)``, the offset from the neighbour's centre in LR
  pixels, and the scale token ``(c_row / 2 * H, c_col / 2 * W)`` (= 1 / scale per axis);
- ``imnet`` (GELU MLP, 4 -> ... -> 27C) maps ``cat[rel, token]`` to a ``9C x 3`` transform
  matrix (element ``(j, o)`` at ``j*3 + o``), applied to the neighbour's 3x3-unfolded
  feature ``u`` (index ``c*9 + ky*3 + kx``): ``pred = u @ W``;
- ``Score`` (GELU MLP 2 -> 256 -> 1) of ``rel`` is added to all three channels.

The four predictions of each colour channel are then mixed by ``Weight`` (GELU MLP
4 -> 256 -> 1), in the neighbour order (-,-), (-,+), (+,-), (+,+). No area weights, no
global residual; input and target normalised with ``(x - 0.5) / 0.5``.

The transform matrix is never built. Its last layer is linear in the last hidden
activation ``h``: ``u @ (A h + b) = (u A) h + u b``, and ``u A``, ``u b`` depend on the LR
pixel only. ``prepare`` tabulates them per LR pixel (one 3x3 convolution of the features,
no unfolding: ``3 x (K + 1)`` values per pixel, K the last hidden width, whatever C is);
a query then needs only the MLP up to ``h`` and a 3 x K product per neighbour instead of
the 27C x K last layer and a 9C x 3 product. The official order of operations is
:func:`ciaosr.decoders.reference.itsrn_query`; float32 results agree to ~1e-6
relative.

Parameter names follow the official state dict (``imnet.layers.*``, ``Weight.layers.*``,
``Score.layers.*``), so the decoder part of an official ``{'model': {'name': 'ITNSR',
...}}`` checkpoint loads directly. ``local_ensemble=False`` and ``feat_unfold=False`` are
the official switches (one neighbour, no Score/Weight; no unfolding).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..errors import CiaosrError
from ..models.registry import register_decoder
from .base import Decoder
from .mlp import ACTIVATIONS, MLP
from .sampling import from_pixel_tables, pixel_tables, sample_nearest, shifted_coords


def itsrn_shift(cell: torch.Tensor, h: int, w: int):
    """ITSRN's 2x2-neighbour offsets, ``1 / ((size - 1) / (1 - cell / 2))`` from the first
    query's cell of each image, (B, 1) each, written as the official code writes it
    (its ``scale`` is half our cell) so that float rounding, and hence which LR pixel a
    query on a pixel border picks, is the same."""
    s = cell[:, :1] / 2
    ty = (h - 1) / (1 - s[..., 0])
    tx = (w - 1) / (1 - s[..., 1])
    return 1 / ty, 1 / tx


@register_decoder("itsrn", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), residual=False,
                  description="implicit transformer")
class ITSRNDecoder(Decoder):
    """ITSRN decoder. ``in_dim`` is the encoder's channel count C; ``hidden`` the widths
    of ``imnet``'s hidden layers (official ``hidden_list: [256, 256, 256, 256]``) and
    ``act`` their activation (the official config's ``gelu``, or ``relu``: ``mlp.ACTIVATIONS``);
    ``ensemble_hidden`` the hidden width of ``Weight`` and ``Score`` (256, and GELU,
    hard-coded in the official code)."""

    cpu_chunk = 512  # see Decoder.cpu_chunk
    official_prefixes = ("imnet.", "Weight.", "Score.")
    liif_name = "itnsr"

    def __init__(self, in_dim: int, hidden: Sequence[int] = (256, 256, 256, 256), ensemble_hidden: int = 256,
                 out_dim: int = 3, local_ensemble: bool = True, feat_unfold: bool = True, act: str = "gelu"):
        super().__init__(in_dim)
        self.out_dim = out_dim
        self.local_ensemble = local_ensemble
        self.feat_unfold = feat_unfold
        self.latent_dim = in_dim * 9 if feat_unfold else in_dim
        # (rel, scale token) -> a latent_dim x out_dim transform matrix
        self.imnet = MLP(4, self.latent_dim * out_dim, tuple(hidden), act=act)
        if local_ensemble:
            # the four neighbours' predictions of one channel -> that channel
            self.Weight = MLP(4, 1, (ensemble_hidden,), act="gelu")
            # rel -> an offset added to every channel of a neighbour's prediction
            self.Score = MLP(2, 1, (ensemble_hidden,), act="gelu")

    @classmethod
    def official_args(cls, sd: dict, spec_args: dict | None = None) -> dict | None:
        """From the keys (imnet widths; Weight/Score present = local ensemble) and the
        official spec's ``feat_unfold`` and imnet activation (without a spec: the official
        config's, unfolding and GELU)."""
        first = sd.get("imnet.layers.0.weight")
        if first is None or first.shape[-1] != 4:
            return None
        args = spec_args or {}
        if args.get("embedding_coord") is not None:
            raise CiaosrError("ITSRN checkpoint with 'embedding_coord': not supported (the official "
                              "configuration has none)")
        if not args.get("scale_token", True):
            raise CiaosrError("ITSRN checkpoint with scale_token false: not supported (the official "
                              "code cannot run it: imnet's input width is fixed at 4)")
        imnet = args.get("imnet_spec") or {}
        # the official MLP's own default activation is a sine (SIREN); its config says gelu
        act = (imnet.get("args") or {}).get("act", "sine") if imnet else "gelu"
        if str(act).lower() not in ACTIVATIONS:
            raise CiaosrError(f"ITSRN checkpoint with imnet activation {act!r}: not supported "
                              "(gelu, the official configuration's, or relu)")
        weights = sorted((k for k in sd if k.startswith("imnet.layers.") and k.endswith(".weight")),
                         key=lambda k: int(k.split(".")[2]))
        out = {"hidden": tuple(int(sd[k].shape[0]) for k in weights[:-1]), "out_dim": 3,
               "local_ensemble": "Weight.layers.0.weight" in sd,
               "feat_unfold": bool(args.get("feat_unfold", True)), "act": str(act).lower()}
        if out["local_ensemble"]:
            out["ensemble_hidden"] = int(sd["Weight.layers.0.weight"].shape[0])
        return out

    # --- per-LR-pixel work ---------------------------------------------------
    def prepare_bytes(self, pixels: int) -> int:
        # the folded table, and the convolution output it is laid out from
        return super().prepare_bytes(pixels) + 8 * pixels * self.out_dim * (self.imnet.layers[-1].in_features + 1)

    def prepare(self, feat: torch.Tensor) -> dict:
        """Per LR pixel p, ``u_p A`` (out_dim x K) and ``u_p b`` (out_dim) as one
        (B*H*W, out_dim*(K+1)) row-major table, from one convolution of ``feat``."""
        b, c, h, w = feat.shape
        last = self.imnet.layers[-1]
        o, k = self.out_dim, last.in_features
        size = 3 if self.feat_unfold else 1
        taps = size * size
        # row j*o + oo of the last layer, j = c*taps + tap: the unfolded layout
        w_fold = last.weight.view(c, taps, o, k).permute(2, 3, 0, 1).reshape(o * k, c, size, size)
        b_fold = last.bias.view(c, taps, o).permute(2, 0, 1).reshape(o, c, size, size)
        table = F.conv2d(feat, torch.cat([w_fold, b_fold]).to(feat.dtype), padding=size // 2)
        return self.from_tables({"table": table.permute(0, 2, 3, 1).reshape(b, h * w, o * (k + 1))}, (h, w))

    def tables(self, prep: dict) -> dict[str, torch.Tensor]:
        return pixel_tables(prep, ("table",))

    def from_tables(self, tables: dict[str, torch.Tensor], size: tuple[int, int]) -> dict:
        return from_pixel_tables(tables, size)

    # --- per-query work ------------------------------------------------------
    def positions(self, coord: torch.Tensor, cell: torch.Tensor, h: int, w: int) -> list[torch.Tensor]:
        """Where the LR pixels are looked up: the four neighbours, or (no local ensemble)
        the query itself, unclamped as in the official code."""
        if self.local_ensemble:
            return shifted_coords(coord, *itsrn_shift(cell, h, w))
        return [coord]

    def query(self, prep: dict, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        b, (h, w) = prep["index"].shape[0], prep["size"]
        nq = coord.shape[1]
        o = self.out_dim
        scale_hw = torch.tensor([h, w], dtype=coord.dtype, device=coord.device)
        positions = self.positions(coord, cell, h, w)
        n = len(positions)
        idx = torch.stack([sample_nearest(prep["index"], c)[..., 0] for c in positions], dim=2).long()
        rel = (coord.unsqueeze(2) - prep["centres"][idx]) * scale_hw  # (B, Q, n, 2)
        token = (cell / 2 * scale_hw).unsqueeze(2).expand(-1, -1, n, -1)
        hid = self.imnet.layers[:-1](torch.cat([rel, token], dim=-1).reshape(b * nq * n, 4))  # (N, K)
        k = hid.shape[-1]
        rows = (idx + (torch.arange(b, device=coord.device) * (h * w)).view(b, 1, 1)).reshape(-1)
        looked = prep["table"].index_select(0, rows)  # (N, o*(k+1))
        pred = torch.baddbmm(looked[:, o * k:].unsqueeze(-1), looked[:, :o * k].view(-1, o, k),
                             hid.to(looked.dtype).unsqueeze(-1)).view(b, nq, n, o)
        if not self.local_ensemble:
            return pred[:, :, 0]
        pred = pred + self.Score(rel)
        return self.Weight(pred.transpose(2, 3))[..., 0]  # (B, Q, o)

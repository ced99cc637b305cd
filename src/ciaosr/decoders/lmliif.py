"""LM-LIIF: LIIF with latent modulations (LMF, He & Jin, CVPR 2024; official code
HeZongyao/LMF, ``models/lmliif.py``, registered there as ``lmliif``).

Per LR pixel, a hypernetwork (``hypernet``, ReLU MLP) maps the 3x3-unfolded latent code and
the cell times ``(H, W)`` to a compressed latent code of the render MLP's width K and a
scale and shift for each of its D hidden layers (:mod:`ciaosr.decoders.modulation`). Per
query and each of LIIF's four neighbours, the render MLP (``imnet``: K + 4 inputs, D ReLU
layers of K, then RGB) maps ``[compressed code, rel, cell * (H, W)]`` with the
neighbour's modulations; LIIF's area weights blend the four. No global residual; input
and target normalised with ``(x - 0.5) / 0.5``. The official configuration: K = 16,
D = 6, hypernetwork ``[208]`` hidden, 208 outputs (2 * 6 * 16 + 16).

As in LIIF's decoder here: the hypernetwork's first layer on the unfolded code is one 3x3
convolution in ``prepare`` (the cell's part is added per cell), and the render MLP's first
layer on the compressed code is a column of the modulation table, so a query's first
layer only adds ``[rel, cell] @ W``; the area blend is applied before the last (linear)
layer. Test-time cell clipping (``max_train_scale``, eval mode only) is that of LMF's
``test.py`` (``cell * max(s / 4, 1)``), read per axis as in :mod:`ciaosr.decoders.lte`.

LMF's CMSR (a test-time option that renders parts of an image at lower scales and
interpolates) is :mod:`ciaosr.inference.cmsr`. Not supported (refused when an official
file asks for them; no official configuration uses them): ``mod_scale``/``mod_shift``/
``mod_input`` false.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..models.registry import register_decoder
from .base import Decoder
from .mlp import MLP
from .modulation import CellTableCache, LatentModulated, modulation_table, official_lmf_args, render, render_mlp
from .sampling import from_pixel_tables


@register_decoder("lmliif", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), residual=False,
                  description="LIIF with latent modulations (LMF)", encoder_args={"swinir": {"out_channels": 64}})
class LMLIIFDecoder(LatentModulated, Decoder):
    official_prefixes = ("hypernet.", "imnet.")
    liif_name = "lmliif"
    not_exportable = "its per-pixel modulations depend on the cell (the hypernetwork sees it)"
    cmsr_search_max = 1.0

    @classmethod
    def official_args(cls, sd: dict, spec_args: dict | None = None) -> dict | None:
        if "coef.weight" in sd:  # LM-LTE's
            return None
        out = official_lmf_args(sd, spec_args, lead=1)
        if out is None:
            return None
        # the render MLP's input: the code, rel (2) and, with cell decoding, the cell (2)
        out["cell_decode"] = sd["imnet.layers.0.weight"].shape[-1] == out["hidden_dim"] + 4
        out["feat_unfold"] = bool((spec_args or {}).get("feat_unfold", True))
        return out

    def __init__(self, in_dim: int, hidden_dim: int = 16, depth: int = 6, hyper_hidden: Sequence[int] = (208,),
                 out_dim: int = 3, local_ensemble: bool = True, feat_unfold: bool = True, cell_decode: bool = True,
                 max_train_scale: float | None = 4.0):
        super().__init__(in_dim)
        self.hidden_dim, self.depth = hidden_dim, depth
        self.local_ensemble, self.feat_unfold, self.cell_decode = local_ensemble, feat_unfold, cell_decode
        self.max_train_scale = max_train_scale
        self.code_dim = in_dim * 9 if feat_unfold else in_dim
        extra = 2 if cell_decode else 0
        self.hypernet = MLP(self.code_dim + extra, (2 * depth + 1) * hidden_dim, tuple(hyper_hidden))
        self.imnet = render_mlp(hidden_dim, depth, hidden_dim + 2 + extra, out_dim)

    def prepare_bytes(self, pixels: int) -> int:
        # the hypernetwork's first layer, its hidden activations and output, the table
        hyper = self.hypernet.layers[0].out_features
        return 4 * pixels * (2 * hyper + 2 * self.hypernet.out_dim + 2 * self.depth * self.hidden_dim)

    def prepare(self, feat: Tensor) -> dict:
        """The hypernetwork's first layer on the (unfolded) latent codes, bias included."""
        b, c, h, w = feat.shape
        first = self.hypernet.layers[0]
        w_code = first.weight[:, :self.code_dim]
        if self.feat_unfold:  # on the 3x3-unfolded code: a 3x3 convolution (as liif.py)
            pre = F.conv2d(feat, w_code.reshape(-1, c, 3, 3), first.bias, padding=1).permute(0, 2, 3, 1)
        else:
            pre = F.linear(feat.permute(0, 2, 3, 1), w_code, first.bias)
        return {**from_pixel_tables({"pre": pre.reshape(b, h * w, -1)}, (h, w)), "tables": CellTableCache()}

    def _table(self, prep: dict, rel_cell0: Tensor) -> Tensor:
        """(B*H*W, K + 2DK): the render MLP's first layer on the compressed code, bias
        included, then the modulations; ``rel_cell0`` (B, 2) each image's scaled cell."""
        first, layers = self.hypernet.layers[0], self.hypernet.layers
        pre = prep["pre"].view(rel_cell0.shape[0], -1, first.out_features)  # (B, H*W, hidden)
        if self.cell_decode:
            pre = pre + (rel_cell0.to(pre.dtype) @ first.weight[:, self.code_dim:].t()).unsqueeze(1)
        mod = layers[2:](torch.relu(pre))
        k, d = self.hidden_dim, self.depth
        w0 = self.imnet.layers[0]
        lead = F.linear(mod[..., 2 * d * k:], w0.weight[:, :k], w0.bias)
        return modulation_table(mod, lead, k, d).flatten(0, 1)

    def query(self, prep: dict, coord: Tensor, cell: Tensor, table_cell: Tensor | None = None,
              clip: bool = True) -> Tensor:
        rel_cell, table = self._cells(prep, cell, table_cell, clip)
        return render(self.imnet, table, prep, coord, rel_cell if self.cell_decode else None, self.hidden_dim,
                      self.depth, self.local_ensemble)

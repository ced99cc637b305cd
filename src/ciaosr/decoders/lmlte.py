"""LM-LTE: LTE with latent modulations (LMF, He & Jin, CVPR 2024; official code
HeZongyao/LMF, ``models/lmlte.py``, registered there as ``lmlte``).

Per LR pixel, as in LTE: amplitudes ``coef = conv3x3(feat)`` and frequencies
``freq = conv3x3(feat)`` (``hidden_dim`` channels each). LMF's hypernetwork input is the
pixel's own Fourier feature without a position: ``coef * cat[cos(pi x), sin(pi x)]`` with
``x_k = freq_{2k} + freq_{2k+1} + phase(cell * (H, W))_k`` (the official code sums each
frequency's two components: the projection onto a relative coordinate of (1, 1)). The
hypernetwork (ReLU MLP) gives compressed amplitude and frequency codes of the render MLP's
width K and a scale and shift for each of its D hidden layers
(:mod:`ciaosr.decoders.modulation`). Per query and each of LIIF's four neighbours, LTE's
Fourier feature is made from the compressed codes (``imphase``, a bias-free Linear
2 -> K/2, for the cell) and goes through the modulated render MLP (``imnet``: K inputs,
D ReLU layers of K, RGB); LIIF's area weights blend the four, and a global residual
(the bilinear sample, border padding, of the normalised input) is added, as LTE. The
official configuration: hidden_dim 128, K = 16, D = 8, hypernetwork ``[288]`` hidden,
288 outputs (2 * 8 * 16 + 2 * 16).

The area blend is applied before the render MLP's last (linear) layer; test-time cell
clipping (``max_train_scale``, eval mode only) is LMF's ``test.py`` one, per axis as in
:mod:`ciaosr.decoders.lte`; CMSR is :mod:`ciaosr.inference.cmsr`. Not supported (refused;
no official configuration uses them): ``mod_scale``/``mod_shift``/``mod_input`` false.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..errors import CiaosrError
from ..models.registry import register_decoder
from .base import Decoder
from .mlp import MLP
from .modulation import (CellTableCache, LatentModulated, blend_output, lookup_neighbours, modulated_hidden,
                         modulation_table, official_lmf_args, render_mlp)
from .sampling import from_pixel_tables


def fourier(x: Tensor, amplitude: Tensor) -> Tensor:
    """LTE's feature: ``amplitude * cat[cos(pi x), sin(pi x)]``."""
    return amplitude * torch.cat([torch.cos(math.pi * x), torch.sin(math.pi * x)], dim=-1)


@register_decoder("lmlte", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), residual=True,
                  description="LTE with latent modulations (LMF)", encoder_args={"swinir": {"out_channels": 64}})
class LMLTEDecoder(LatentModulated, Decoder):
    official_prefixes = ("coef.", "freq.", "phase.", "hypernet.", "imphase.", "imnet.")
    liif_name = "lmlte"
    not_exportable = "its per-pixel modulations depend on the cell (the hypernetwork sees it)"
    cmsr_search_residual = True

    @classmethod
    def official_args(cls, sd: dict, spec_args: dict | None = None) -> dict | None:
        if "coef.weight" not in sd:
            return None
        out = official_lmf_args(sd, spec_args, lead=2)
        if out is None:
            return None
        out["lte_dim"] = int(sd["coef.weight"].shape[0])
        return out

    def __init__(self, in_dim: int, lte_dim: int = 128, hidden_dim: int = 16, depth: int = 8,
                 hyper_hidden: Sequence[int] = (288,), out_dim: int = 3, local_ensemble: bool = True,
                 cell_decode: bool = True, max_train_scale: float | None = 4.0):
        super().__init__(in_dim)
        if lte_dim % 2 or hidden_dim % 2:
            raise CiaosrError(f"LM-LTE widths must be even, got lte_dim {lte_dim} and hidden_dim {hidden_dim}")
        self.lte_dim, self.hidden_dim, self.depth = lte_dim, hidden_dim, depth
        self.local_ensemble, self.cell_decode = local_ensemble, cell_decode
        self.max_train_scale = max_train_scale
        self.coef = nn.Conv2d(in_dim, lte_dim, 3, padding=1)
        self.freq = nn.Conv2d(in_dim, lte_dim, 3, padding=1)
        self.phase = nn.Linear(2, lte_dim // 2, bias=False)
        self.hypernet = MLP(lte_dim, (2 * depth + 2) * hidden_dim, tuple(hyper_hidden))
        self.imphase = nn.Linear(2, hidden_dim // 2, bias=False)
        self.imnet = render_mlp(hidden_dim, depth, hidden_dim, out_dim)

    def prepare_bytes(self, pixels: int) -> int:
        # coef and freq, the hypernetwork's input, hidden activations and output, the table
        return 4 * pixels * (4 * self.lte_dim + self.hypernet.layers[0].out_features + 2 * self.hypernet.out_dim)

    def prepare(self, feat: Tensor) -> dict:
        """Amplitudes and the per-pixel frequency sums, (B, H*W, .) each."""
        b, _, h, w = feat.shape
        coef = self.coef(feat).permute(0, 2, 3, 1).reshape(b, h * w, -1)
        freq = self.freq(feat).permute(0, 2, 3, 1).reshape(b, h * w, -1)
        return {**from_pixel_tables({"coef": coef, "freq_sum": freq[..., 0::2] + freq[..., 1::2]}, (h, w)),
                "tables": CellTableCache()}

    def _table(self, prep: dict, rel_cell0: Tensor) -> Tensor:
        """(B*H*W, 2K + 2DK): compressed amplitude and frequency codes, then the
        modulations; ``rel_cell0`` (B, 2) each image's scaled cell."""
        b = rel_cell0.shape[0]
        x = prep["freq_sum"].view(b, -1, self.lte_dim // 2)
        if self.cell_decode:
            x = x + self.phase(rel_cell0.to(x.dtype)).unsqueeze(1)
        mod = self.hypernet(fourier(x, prep["coef"].view(b, -1, self.lte_dim)))
        k, d = self.hidden_dim, self.depth
        return modulation_table(mod, mod[..., 2 * d * k:], k, d).flatten(0, 1)

    def query(self, prep: dict, coord: Tensor, cell: Tensor, table_cell: Tensor | None = None,
              clip: bool = True) -> Tensor:
        k = self.hidden_dim
        rel_cell, table = self._cells(prep, cell, table_cell, clip)
        rows, rel = lookup_neighbours(prep, coord, self.local_ensemble)
        n = rel.shape[2]
        looked = table.index_select(0, rows)  # (B*Q*n, .)
        # frequency j has components (2j, 2j+1) = (row, col), projected on rel
        x = (looked[:, k:2 * k].view(-1, k // 2, 2) * rel.reshape(-1, 1, 2).to(looked.dtype)).sum(dim=-1)
        if self.cell_decode:
            x = x + self.imphase(rel_cell.to(x.dtype)).unsqueeze(2).expand(-1, -1, n, -1).reshape(-1, k // 2)
        x = self.imnet.layers[0](fourier(x, looked[:, :k]))
        x = modulated_hidden(self.imnet, x, looked[:, 2 * k:], k, self.depth)
        return blend_output(self.imnet, x, rel)

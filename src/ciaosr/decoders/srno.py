"""SRNO: the Super-Resolution Neural Operator decoder (Wei & Zhang, CVPR 2023), as the
official code (2y7c3/Super-Resolution-Neural-Operator, ``models/sronet.py`` and
``models/galerkin.py``, registered there as ``sronet``) computes it.

For a query at ``coord`` with cell ``c`` and each of LIIF's four neighbouring LR pixels
(their offsets ``rel_i`` in LR pixels and area weights ``a_i``, LIIF's):

- lifting: ``x = conv00(cat[rel_0..rel_3, a_0 f_0 .. a_3 f_3, c * (H, W)])`` (a 1x1
  convolution to ``width`` channels; ``f_i`` the neighbour's latent code);
- two Galerkin-type attention layers (``conv0``, ``conv1``), each over *all the queries
  of the image*: ``q, k, v`` per head from a 1x1 convolution, ``k`` and ``v``
  layer-normalised over the head's channels (the official LayerNorm: unbiased standard
  deviation, ``eps`` added to it), ``y = q (k^T v) / N`` (N the number of queries),
  then ``x + o2(gelu(o1(y + x)))``;
- the output ``fc2(gelu(fc1(x)))`` (``fc1`` 256 wide) plus a global residual (the bilinear
  sample, border padding, of the normalised input), as LTE.

Because ``k^T v`` sums over every query, a query's output depends on the whole query set:
the official ``test.py`` decodes the whole output grid at once (its ``eval_bsize`` option
instead makes each band of rows its own set, and changes the result). Here
:meth:`SRNODecoder.plan_queries` (called by ``decode_chunked`` with all the queries)
accumulates each layer's ``k^T v`` over all queries in chunks first, so decoding in
chunks of any size gives the whole-grid result; a ``query`` call without it (one forward
pass, training, a bare ``decode``) treats its own queries as the set, as the official
``query_rgb`` does. Tiled upscaling decodes each tile as its own set (docs/models.md).

The latent codes' part of ``conv00`` is applied per LR pixel in ``prepare`` (one table of
four ``width``-wide rows per pixel, one per neighbour slot); a query gathers its four rows.
Once ``k^T v`` is known, each attention layer's ``q (k^T v) / N`` is one width x width
product (the query projection folded into it), and a query computes no keys or values.
The official ``conv00`` takes ``(64 + 2) * 4 + 2`` inputs, so the official code runs
only on 64-channel encoders (EDSR-baseline, RDN); here the width follows the encoder.
Parameter names and shapes are the official ones (1x1 convolutions), so the decoder part
of an official ``{'model': {'name': 'sronet', ...}}`` checkpoint loads directly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models.registry import register_decoder
from .base import Decoder
from .modulation import lookup_neighbours
from .sampling import area_weights, from_pixel_tables


class GalerkinLayerNorm(nn.Module):
    """The official ``LayerNorm`` of ``galerkin.py``: over the last dimension, with the
    unbiased standard deviation and ``eps`` added to it (not to the variance)."""

    def __init__(self, shape, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(shape))
        self.bias = nn.Parameter(torch.zeros(shape))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return self.weight * ((x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + self.eps)) + self.bias


class GalerkinAttention(nn.Module):
    """One official ``simple_attn`` layer, on (B, N, width) queries; ``heads`` is the
    official ``blocks``."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        if width % heads:
            raise ValueError(f"SRNO width {width} is not a multiple of its {heads} heads")
        self.heads, self.head_dim = heads, width // heads
        self.qkv_proj = nn.Conv2d(width, 3 * width, 1)
        self.o_proj1 = nn.Conv2d(width, width, 1)
        self.o_proj2 = nn.Conv2d(width, width, 1)
        self.kln = GalerkinLayerNorm((heads, 1, self.head_dim))
        self.vln = GalerkinLayerNorm((heads, 1, self.head_dim))

    def _qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, n, _ = x.shape
        qkv = conv1x1(self.qkv_proj, x).view(b, n, self.heads, 3 * self.head_dim).transpose(1, 2)
        q, k, v = qkv.chunk(3, dim=-1)
        return q, self.kln(k), self.vln(v)

    def key_value(self, x: Tensor) -> Tensor:
        """``sum_n k_n^T v_n`` over the queries of ``x``: (B, heads, d, d)."""
        b, n, _ = x.shape
        d = self.head_dim
        w = self.qkv_proj.weight.flatten(1).view(self.heads, 3, d, -1)[:, 1:].reshape(2 * self.heads * d, -1)
        bias = self.qkv_proj.bias.view(self.heads, 3, d)[:, 1:].reshape(-1)
        kv = F.linear(x, w, bias).view(b, n, self.heads, 2, d).permute(3, 0, 2, 1, 4)
        k, v = self.kln(kv[0]), self.vln(kv[1])
        return k.transpose(-2, -1) @ v

    def forward(self, x: Tensor, kv_mean: Tensor | None = None) -> Tensor:
        """``kv_mean``: ``k^T v / N`` of the whole query set; None: ``x``'s own.

        ``q (k^T v / N)`` is linear in ``x`` once the sums are known: per head
        ``x (W_q^T S) + b_q S``, one width x width product for all heads (the official
        order of operations: :meth:`official`)."""
        b, n, width = x.shape
        d = self.head_dim
        if kv_mean is None:
            kv_mean = self.key_value(x) / n
        w_q = self.qkv_proj.weight.flatten(1).view(self.heads, 3, d, width)[:, 0]  # (heads, d, width)
        b_q = self.qkv_proj.bias.view(self.heads, 3, d)[:, 0]  # (heads, d)
        # per image and head: y_h = x W_q,h^T S_h + b_q,h S_h
        w_fused = (kv_mean.transpose(-2, -1) @ w_q).reshape(b, width, width)  # rows h*d + j
        b_fused = (b_q.unsqueeze(-2) @ kv_mean).reshape(b, 1, width)
        y = torch.baddbmm(b_fused.to(x.dtype), x, w_fused.transpose(1, 2).to(x.dtype)) + x
        return conv1x1(self.o_proj2, F.gelu(conv1x1(self.o_proj1, y))) + x

    def official(self, x: Tensor) -> Tensor:
        """The official ``simple_attn.forward`` on (B, N, width) queries, as a set."""
        b, n, width = x.shape
        q, k, v = self._qkv(x)
        y = (q @ ((k.transpose(-2, -1) @ v) / n)).transpose(1, 2).reshape(b, n, width) + x
        return conv1x1(self.o_proj2, F.gelu(conv1x1(self.o_proj1, y))) + x


def conv1x1(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """A 1x1 convolution on (..., C) rows."""
    return F.linear(x, conv.weight.flatten(1), conv.bias)


@register_decoder("srno", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), residual=True,
                  description="super-resolution neural operator")
class SRNODecoder(Decoder):
    official_prefixes = ("conv00.", "conv0.", "conv1.", "fc1.", "fc2.")
    liif_name = "sronet"
    not_exportable = "its attention spans all the queries of an image, not one chunk"
    tiles_differ = ("its attention spans the queries decoded together, so each tile is its own set and every "
                    "pixel changes (random weights, a Set14 crop: tiles of 64-128 LR pixels 55-59 dB from the "
                    "whole image, LIIF's 66-88 dB; benchmarks/srno_tiled_vs_whole.py)")
    #: Queries per pass when ``plan_queries`` accumulates the attention sums.
    stat_chunk = 16384

    @classmethod
    def official_args(cls, sd: dict, spec_args: dict | None = None) -> dict | None:
        if "conv00.weight" not in sd or "conv0.qkv_proj.weight" not in sd:
            return None
        return {"width": int(sd["conv00.weight"].shape[0]), "heads": int(sd["conv0.kln.weight"].shape[0]),
                "hidden": int(sd["fc1.weight"].shape[0])}

    def __init__(self, in_dim: int, width: int = 256, heads: int = 16, hidden: int = 256, out_dim: int = 3):
        super().__init__(in_dim)
        self.width = width
        self.conv00 = nn.Conv2d((in_dim + 2) * 4 + 2, width, 1)
        self.conv0 = GalerkinAttention(width, heads)
        self.conv1 = GalerkinAttention(width, heads)
        self.fc1 = nn.Conv2d(width, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, out_dim, 1)

    def prepare_bytes(self, pixels: int) -> int:
        return super().prepare_bytes(pixels) + 4 * pixels * 8 * self.width

    def prepare(self, feat: Tensor) -> dict:
        """Per LR pixel and neighbour slot i, ``f @ W_i^T`` (W_i: conv00's columns for
        slot i's latent code): a (B*H*W*4, width) table, row ``pixel * 4 + i``."""
        b, c, h, w = feat.shape
        w_feat = self.conv00.weight.flatten(1)[:, 8:8 + 4 * c].reshape(self.width, 4, c).transpose(0, 1)
        table = feat.permute(0, 2, 3, 1).reshape(-1, c) @ w_feat.reshape(4 * self.width, c).t()
        return from_pixel_tables({"table": table.view(b, h * w, 4 * self.width)}, (h, w))

    def _lift(self, prep: dict, coord: Tensor, cell: Tensor) -> Tensor:
        """``conv00`` of the queries: (B, Q, width)."""
        h, w = prep["size"]
        b, nq = coord.shape[:2]
        rows, rel = lookup_neighbours(prep, coord, True)  # rel (B, Q, 4, 2)
        slots = rows * 4 + torch.arange(4, device=rows.device).repeat(b * nq)
        looked = prep["table"].view(-1, self.width).index_select(0, slots).view(b, nq, 4, self.width)
        weights = area_weights([rel[:, :, i] for i in range(4)])  # (B, Q, 4)
        x = (weights.unsqueeze(-2).to(looked.dtype) @ looked).squeeze(-2)
        weight = self.conv00.weight.flatten(1)
        rel_cell = cell * torch.tensor([h, w], dtype=cell.dtype, device=cell.device)
        return x + F.linear(torch.cat([rel.flatten(2), rel_cell], dim=-1).to(x.dtype),
                            torch.cat([weight[:, :8], weight[:, -2:]], dim=1), self.conv00.bias)

    def plan_queries(self, prep: dict, coord: Tensor, cell: Tensor) -> dict:
        """``prep`` with each layer's ``k^T v / N`` over all the given queries, accumulated
        in chunks of ``stat_chunk`` (the second layer's needs the first's)."""
        n = coord.shape[1]
        kv_means: list[Tensor] = []
        for layer in (self.conv0, self.conv1):
            total = 0
            for a in range(0, n, self.stat_chunk):
                x = self._lift(prep, coord[:, a:a + self.stat_chunk], cell[:, a:a + self.stat_chunk])
                for done, kv_mean in zip((self.conv0, self.conv1), kv_means):
                    x = done(x, kv_mean)
                total = total + layer.key_value(x)
            kv_means.append(total / n)
        return {**prep, "kv_means": kv_means}

    def query(self, prep: dict, coord: Tensor, cell: Tensor) -> Tensor:
        kv_means = prep.get("kv_means", (None, None))
        x = self._lift(prep, coord, cell)
        x = self.conv1(self.conv0(x, kv_means[0]), kv_means[1])
        return conv1x1(self.fc2, F.gelu(conv1x1(self.fc1, x)))


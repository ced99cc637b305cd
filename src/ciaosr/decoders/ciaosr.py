"""CiaoSR's implicit attention decoder (Cao et al., CVPR 2023).

For each query, attention over the 2x2 neighbouring latent codes: the query is the raw
3x3-unfolded feature of the LR pixel containing it; keys and values are the neighbours'
unfolded features (values also carry the non-local feature), each multiplicatively
modulated by an MLP of (feature, relative coordinate, cell). The attended value is
decoded to RGB by ``imnet_q``. See shared/docs/ciaosr-model.md.

Every query-independent product is moved into ``prepare`` (float32 results agree with
the official computation to ~1e-6):
  the feature halves of the first layers of ``imnet_k`` and ``imnet_v`` are computed
  once per LR pixel, and the attention logit ``q . (k * (W h + b))`` is evaluated as
  ``(W^T (q * k)) . h + (q * k) . b``, where ``W^T (q * k)`` depends only on the query's
  LR pixel and the neighbour's offset from it (one of 3x3), so it is tabulated per
  (LR pixel, offset) instead of computed per query (when queries are dense: more than
  2.25 per LR pixel, as when upscaling whole images; sparse training batches compute
  the logit per query). The four neighbours go through each MLP as one batch.

The official computation (the non-local attention and unfolding inside every query
chunk, every MLP layer per query and neighbour) is
:func:`ciaosr.decoders.reference.ciaosr_query`, for tests and benchmarks.

Ablation switches: ``non_local=False`` drops the non-local feature from the values
(the official ``non_local_attn``); ``attention='mlp'`` replaces the q.k softmax by
weights that an MLP predicts from (key feature, relative coordinate, cell), softmaxed
over the 4 neighbours; ``residual=False`` drops the model's global bilinear residual of
the input (the official ``res``; the released real-world model has both switches off).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..models.registry import register_decoder
from . import gemm
from .base import Decoder
from .mlp import MLP, first_layer, run_layers, split_first_layer
from .nonlocal_attention import CrossScaleAttention
from .sampling import pixel_grid, sample_nearest, shifted_coords, unfold3x3
from .workspace import Workspace, reusable


def neighbour_shift(cell: torch.Tensor, h: int, w: int):
    """CiaoSR's 2x2-neighbour offsets, the official ``(1 - cell) / (size - 1)``, from the
    first query's cell of each image: (B, 1) each."""
    return (1 - cell[:, :1, 0]) / max(h - 1, 1), (1 - cell[:, :1, 1]) / max(w - 1, 1)


class LogitTables:
    """A cache: imnet_k's last layer folded into tables, ``W^T (q * k)`` and
    ``(q * k) . b`` for the query at every LR pixel p and the neighbour at each of the
    3x3 offsets p + d, built in bands of LR rows (the rows of the chunks' queries) and
    kept while chunks stay inside them, so that row-ordered queries build each row once
    and the tables never hold the whole image (9 x hidden values per LR pixel: 340 MB at
    192 x 192). Bands lie on a fixed grid of rows and the three newest are kept, so that
    chunks decoded side by side on several threads (``runtime.side_by_side``), which
    may ask in any order, find the band another built; a lock keeps two threads from
    building the same band. Queries in no particular order would rebuild bands again and
    again; once the rows built reach three times the image's, the whole table is built
    instead.

    ``builds`` lists the (first row, end row) of every band built, oldest first."""

    kept = 3

    def __init__(self, last: torch.nn.Linear, keys: torch.Tensor, batch: int, size: tuple[int, int],
                 band_elements: int):
        self.last, self.keys, self.batch, self.size = last, keys, batch, size
        self.band_elements = band_elements
        self.bands: list[tuple] = []
        self.builds: list[tuple[int, int]] = []
        self._lock = threading.Lock()

    def rows(self, row_min: int, row_max: int):
        """(r0, r1, weight, bias) of a band holding LR rows ``row_min..row_max``."""
        with self._lock:
            for band in self.bands:
                if band[0] <= row_min and row_max < band[1]:
                    return band
            h, w = self.size
            per_row = max(self.batch * w * 9 * self.last.in_features, 1)
            rows = max(self.band_elements // per_row, 1)
            r0 = row_min // rows * rows  # on a fixed grid of bands, whichever chunk asks first
            if row_max >= r0 + rows:  # the chunk straddles two bands: one of its own
                r0, rows = row_min, max(rows, row_max - row_min + 1)
            r1 = min(h, r0 + rows)
            if sum(b - a for a, b in self.builds) >= 3 * h:
                r0, r1 = 0, h
            self.builds.append((r0, r1))
            self.bands = self.bands[-(self.kept - 1):]  # free the oldest before the new one is built
            band = (r0, r1, *self._build(r0, r1))
            self.bands.append(band)
            return band

    def _build(self, r0: int, r1: int):
        """(9 * B*(r1-r0)*W, hidden) and (9 * B*(r1-r0)*W,) tables, offset-major (row
        ``d * B*(r1-r0)*W + pixel``). One offset at a time into the preallocated tables,
        so the temporaries are one offset's worth."""
        h, w = self.size
        b, key_dim = self.batch, self.keys.shape[-1]
        grid = self.keys.view(b, h, w, key_dim)
        lo, hi = max(r0 - 1, 0), min(r1 + 1, h)
        # Zero keys outside the image, as unfolding: rows r0-1 .. r1 and columns -1 .. w.
        padded = F.pad(grid[:, lo:hi], (0, 0, 1, 1, int(r0 == 0), int(r1 == h)))
        rows = r1 - r0
        n = b * rows * w
        weight = bias = None
        for dy in range(3):
            for dx in range(3):
                qk = (grid[:, r0:r1] * padded[:, dy:dy + rows, dx:dx + w]).view(n, key_dim)
                wd, bd = gemm.matmul(qk, self.last.weight), qk @ self.last.bias
                if weight is None:  # in the products' dtype (bf16 under autocast)
                    weight = wd.new_empty(9, n, wd.shape[-1])
                    bias = bd.new_empty(9, n)
                weight[dy * 3 + dx], bias[dy * 3 + dx] = wd, bd
        return weight.view(9 * n, -1), bias.view(9 * n)


@dataclass
class CiaoSRPrepared:
    """Per-image tables of :class:`CiaoSRDecoder`, pixel-major (row ``b*H*W + pixel``)."""

    size: tuple[int, int]  # (H, W)
    batch: int
    keys: torch.Tensor  # (B*H*W, 9C) unfolded features
    values: torch.Tensor  # (B*H*W, 10C or 9C): keys and the non-local feature
    key_hidden: torch.Tensor  # feature half of imnet_k's (imnet_a's) first layer
    value_hidden: torch.Tensor  # feature half of imnet_v's first layer
    centres: torch.Tensor  # (H*W, 2) LR pixel centres
    index: torch.Tensor  # (B, 1, H, W) pixel numbers, for grid_sample's own rounding
    tables: LogitTables | None = None  # set by ``plan`` when queries are dense
    workspace: Workspace = field(default_factory=Workspace)  # per-chunk buffers


@register_decoder("ciaosr", mean=(0.4488, 0.4371, 0.4040), std=(1.0, 1.0, 1.0), residual=True,
                  description="implicit attention over 2x2 latents + cross-scale non-local attention")
class CiaoSRDecoder(Decoder):
    # Fast decoding: each query carries 4 x (10C + 3 x 256) activations, and 8192 keeps a
    # chunk near 200 MB; on the CPU 1024 (see Decoder.cpu_chunk, docs/performance.md).
    max_chunk = 8192
    cpu_chunk = 1024
    official_prefixes = ("imnet_q.", "imnet_k.", "imnet_v.", "imnet_a.", "cs_attn.")
    #: The per-pixel tables of ``CiaoSRPrepared`` (see ``tables``).
    table_names = ("keys", "values", "key_hidden", "value_hidden")

    @classmethod
    def official_args(cls, sd: dict, spec_args: dict | None = None) -> dict | None:
        if "imnet_q.layers.0.weight" not in sd or "hypernet_q.layers.0.weight" in sd:  # LM-CiaoSR's
            return None
        hidden = [sd[f"imnet_q.layers.{i}.weight"].shape[0] for i in range(0, 100, 2)
                  if f"imnet_q.layers.{i}.weight" in sd][:-1]
        return {"hidden": hidden, "non_local": "cs_attn.down.weight" in sd,
                "attention": "dot" if "imnet_k.layers.0.weight" in sd else "mlp"}

    def __init__(self, in_dim: int, hidden: Sequence[int] = (256, 256, 256, 256), out_dim: int = 3,
                 non_local: bool = True, attention: str = "dot", residual: bool = True):
        super().__init__(in_dim)
        if attention not in ("dot", "mlp"):
            raise ValueError(f"attention must be 'dot' or 'mlp', not {attention!r}")
        self.non_local = non_local
        self.global_residual = bool(residual)
        self.attention = attention
        # Queries per LR pixel from which tabulating the logit weights (9 per pixel) beats
        # computing them per query and neighbour (4 per query).
        self.table_density = 2.25
        # Values per band of logit tables (see LogitTables): 2^22 floats, 16 MB.
        self.table_band_elements = 2 ** 22
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
            self.max_tile = 192  # the official test tile: the non-local search window

    @property
    def key_net(self) -> MLP:
        """The MLP of the attention weights: imnet_k (dot attention) or imnet_a."""
        return self.imnet_k if self.attention == "dot" else self.imnet_a

    def prepare_bytes(self, pixels: int) -> int:
        # The per-pixel tables (keys 9C, values 10C, the two first-layer halves), and the
        # non-local attention's working set, bounded by its bands (scores, weights and
        # pasted columns: three band buffers). Measured peak of encode + prepare at 192 x
        # 192 on the CPU: 376 MiB; with the tiler's encoder term this estimate is ~2x that.
        hidden = self.imnet_v.layers[0].out_features
        tables = 4 * pixels * ((19 if self.non_local else 18) * self.in_dim + 2 * hidden)
        return super().prepare_bytes(pixels) + tables + (12 * self.cs_attn.band_elements if self.non_local else 0)

    def prepare(self, feat: torch.Tensor) -> CiaoSRPrepared:
        b, c, h, w = feat.shape
        # Row-major (pixel, channel) tables: every query gathers whole rows of them, and a
        # channel-major view would make each row gather touch 10C scattered cache lines.
        # Built straight into that layout, so at most one channel-major map (9C) is alive.
        keys = unfold3x3(feat).flatten(2).transpose(1, 2).contiguous()  # (B, HW, 9C)
        values = keys
        if self.non_local:
            values = torch.cat([keys, self.cs_attn(feat).flatten(2).transpose(1, 2)], dim=-1)  # (B, HW, 10C)
        key_dim, value_dim = keys.shape[-1], values.shape[-1]
        wv, bv, _ = split_first_layer(self.imnet_v, value_dim)
        wk, bk, _ = split_first_layer(self.key_net, key_dim)
        return self.from_tables({"keys": keys, "values": values, "key_hidden": F.linear(keys, wk, bk),
                                 "value_hidden": F.linear(values, wv, bv)}, (h, w))

    def tables(self, prep: CiaoSRPrepared) -> dict[str, torch.Tensor]:
        b, (h, w) = prep.batch, prep.size
        return {name: getattr(prep, name).view(b, h * w, -1) for name in self.table_names}

    def from_tables(self, tables: dict[str, torch.Tensor], size: tuple[int, int]) -> CiaoSRPrepared:
        keys = tables["keys"]
        centres, index = pixel_grid(keys.shape[0], size, keys.device)
        return CiaoSRPrepared(size=size, batch=keys.shape[0], centres=centres, index=index,
                              **{name: tables[name].flatten(0, 1) for name in self.table_names})

    def plan(self, prep: CiaoSRPrepared, num_queries: int) -> None:
        """Dense queries (more than ``table_density`` per LR pixel, as when upscaling whole
        images) use tabulated logits; the decision is taken on all the queries of an image,
        so it does not depend on the chunk size."""
        h, w = prep.size
        if self.attention == "dot" and prep.tables is None and num_queries >= self.table_density * h * w:
            prep.tables = LogitTables(self.imnet_k.layers[-1], prep.keys, prep.batch, prep.size,
                                      self.table_band_elements)

    def query(self, prep: CiaoSRPrepared, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        h, w = prep.size
        bsz, nq = coord.shape[:2]
        scale_hw = torch.tensor([h, w], dtype=coord.dtype, device=coord.device)
        ry, rx = neighbour_shift(cell, h, w)
        # LR pixel of the query and of its four neighbours, by grid_sample's own rounding.
        q_idx = sample_nearest(prep.index, coord)[..., 0].long()  # (B, Q)
        n_idx = torch.stack([sample_nearest(prep.index, c)[..., 0] for c in shifted_coords(coord, ry, rx)],
                            dim=2).long()  # (B, Q, 4)
        rel = (coord.unsqueeze(2) - prep.centres[n_idx]) * scale_hw  # (B, Q, 4, 2)
        pos = torch.cat([rel, (cell * scale_hw).unsqueeze(2).expand(-1, -1, 4, -1)], dim=-1).reshape(-1, 4)
        base = (torch.arange(bsz, device=coord.device) * (h * w)).view(bsz, 1, 1)
        flat = (n_idx + base).reshape(-1)  # rows of the per-pixel tables

        ws = prep.workspace
        # Values: per-pixel first-layer half + per-query position half, then the rest.
        _, _, wv_pos = split_first_layer(self.imnet_v, prep.values.shape[-1])
        m_v = run_layers(self.imnet_v, first_layer(prep.value_hidden, flat, pos, wv_pos, ws), 1, ws=ws,
                         out_name="m_v")
        if reusable():
            v_hat = torch.index_select(prep.values, 0, flat, out=ws.take("v", m_v.shape, prep.values)).mul_(m_v)
        else:
            v_hat = prep.values.index_select(0, flat) * m_v
        v_hat = v_hat.view(bsz * nq, 4, -1)

        _, _, wk_pos = split_first_layer(self.key_net, self.in_dim * 9)
        hk = first_layer(prep.key_hidden, flat, pos, wk_pos, ws)
        if self.attention == "mlp":
            logits = run_layers(self.imnet_a, hk, 1, ws=ws)[..., 0]
        elif prep.tables is not None:
            hk = run_layers(self.imnet_k, hk, 1, -1, ws)  # up to the last hidden layer
            q_row, q_col = q_idx // w, q_idx % w
            r0, r1, table_w, table_b = prep.tables.rows(int(q_row.min()), int(q_row.max()))
            n_row, n_col = n_idx // w, n_idx % w
            offset = (n_row - q_row.unsqueeze(2) + 1) * 3 + (n_col - q_col.unsqueeze(2) + 1)
            image = torch.arange(bsz, device=coord.device).view(bsz, 1, 1) * (r1 - r0)
            pixel = (image + (q_row - r0).unsqueeze(2)) * w + q_col.unsqueeze(2)
            pair = (offset * (bsz * (r1 - r0) * w) + pixel).reshape(-1)
            logits = (table_w[pair] * hk).sum(-1) + table_b[pair]
        else:
            # Sparse queries (training batches): q . (k * imnet_k(...)) per query.
            q_rows = (q_idx + base[..., 0]).reshape(-1)
            m_k = run_layers(self.imnet_k, hk, 1, ws=ws).view(bsz * nq, 4, -1)
            qk = prep.keys[flat].view(bsz * nq, 4, -1) * prep.keys[q_rows].unsqueeze(1)
            logits = (qk * m_k).sum(-1)
        attn = torch.softmax(logits.view(bsz * nq, 1, 4), dim=-1)
        x = torch.bmm(attn, v_hat).view(bsz, nq, -1)  # attention-weighted sum of the values
        return run_layers(self.imnet_q, x.view(bsz * nq, -1), 0, ws=ws).view(bsz, nq, -1)

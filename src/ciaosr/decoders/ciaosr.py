"""CiaoSR's implicit attention decoder (Cao et al., CVPR 2023).

For each query, attention over the 2x2 neighbouring latent codes: the query is the raw
3x3-unfolded feature of the LR pixel containing it; keys and values are the neighbours'
unfolded features (values also carry the non-local feature), each multiplicatively
modulated by an MLP of (feature, relative coordinate, cell). The attended value is
decoded to RGB by ``imnet_q``. See shared/docs/ciaosr-model.md.

Two ways to compute the same thing (float32 results agree to ~1e-6):

* ``mode='fast'`` (default) moves every query-independent product into ``prepare``:
  the feature halves of the first layers of ``imnet_k`` and ``imnet_v`` are computed
  once per LR pixel, and the attention logit ``q . (k * (W h + b))`` is evaluated as
  ``(W^T (q * k)) . h + (q * k) . b``, where ``W^T (q * k)`` depends only on the query's
  LR pixel and the neighbour's offset from it (one of 3x3), so it is tabulated per
  (LR pixel, offset) instead of computed per query (when queries are dense: more than
  2.25 per LR pixel, as when upscaling whole images; sparse training batches compute
  the logit per query). The four neighbours go through each MLP as one batch.
* ``mode='reference'`` computes as the official code does: the non-local attention
  and unfolding inside every query chunk, every MLP layer per query and neighbour.
  It exists for benchmarks and tests.

Ablation switches: ``non_local=False`` drops the non-local feature from the values;
``attention='mlp'`` replaces the q.k softmax by weights that an MLP predicts from
(key feature, relative coordinate, cell), softmaxed over the 4 neighbours.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .mlp import MLP
from .nonlocal_attention import CrossScaleAttention
from .sampling import feature_coord, sample_nearest, shifted_coords, unfold3x3


def _split_first_layer(mlp: MLP, feat_dim: int):
    """(W_feat, b, W_pos) of an MLP whose input is cat[feature, rel (2), cell (2)]."""
    first = mlp.layers[0]
    return first.weight[:, :feat_dim], first.bias, first.weight[:, feat_dim:]


def _first_layer(table: torch.Tensor, rows: torch.Tensor, pos: torch.Tensor, w_pos: torch.Tensor):
    """Pre-activation of a split first layer: the per-pixel half gathered at ``rows``
    plus the (rel, cell) half, in one fused multiply-add. pos: (N, 4) -> (N, hidden)."""
    gathered = table.index_select(0, rows)
    if torch.is_grad_enabled():
        return torch.addmm(gathered, pos, w_pos.t())
    return gathered.addmm_(pos.to(gathered.dtype), w_pos.t().to(gathered.dtype))


def _run_tail(mlp: MLP, h: torch.Tensor, stop: int | None = None) -> torch.Tensor:
    """ReLU (in place) on a first-layer pre-activation, then layers 2..stop of ``mlp``."""
    h = h.relu_() if not torch.is_grad_enabled() else F.relu(h)
    for layer in list(mlp.layers)[2:stop]:
        h = layer(h)
    return h


class CiaoSRDecoder(nn.Module):
    def __init__(self, in_dim: int, hidden: Sequence[int] = (256, 256, 256, 256), out_dim: int = 3,
                 non_local: bool = True, attention: str = "dot", mode: str = "fast"):
        super().__init__()
        if attention not in ("dot", "mlp"):
            raise ValueError(f"attention must be 'dot' or 'mlp', not {attention!r}")
        if mode not in ("fast", "reference"):
            raise ValueError(f"mode must be 'fast' or 'reference', not {mode!r}")
        self.in_dim = in_dim
        self.non_local = non_local
        self.attention = attention
        self.mode = mode
        # Queries per LR pixel from which tabulating the logit weights (9 per pixel) beats
        # computing them per query and neighbour (4 per query).
        self.table_density = 2.25
        # Values per band of logit tables (see _logit_band): 2^22 floats, 16 MB.
        self.table_band_elements = 2 ** 22
        # Queries per chunk on the CPU, where smaller is faster (docs/performance.md): with
        # 1024 queries the activations (~10 MB) are reused from the heap instead of being
        # mapped fresh, and page-faulted, for every chunk. None in reference mode, which
        # keeps the official chunks.
        self.cpu_chunk = 1024 if mode == "fast" else None
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

    @property
    def max_chunk(self) -> int:
        """Queries decoded at once, at most. Fast mode: each query carries 4 x (10C + 3 x 256)
        activations, and 8192 keeps a chunk near 200 MB. Reference mode: the official 30000
        (it recomputes the non-local attention per chunk)."""
        return 8192 if self.mode == "fast" else 30000

    # ------------------------------------------------------------------------
    def prepare(self, feat: torch.Tensor, nonlocal_feat: torch.Tensor | None = None) -> dict:
        """Per-LR-pixel work, once per image (or tile).

        ``nonlocal_feat`` may be given when it was computed elsewhere (e.g. in tiles).
        """
        if self.mode == "reference":  # the official code does everything per chunk
            return {"feat": feat, "nonlocal_feat": nonlocal_feat}
        return self._prepare_fast(feat, nonlocal_feat)

    def query(self, prep: dict, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        if "feat" in prep:
            return self.query_reference(self._prepare_maps(prep["feat"], prep["nonlocal_feat"]), coord, cell)
        return self._query_fast(prep, coord, cell)

    # --- the straightforward computation ---------------------------------------
    def _prepare_maps(self, feat, nonlocal_feat=None) -> dict:
        keys = unfold3x3(feat)
        values = keys
        if self.non_local:
            if nonlocal_feat is None:
                nonlocal_feat = self.cs_attn(feat)
            values = torch.cat([keys, nonlocal_feat], dim=1)
        return {"keys": keys, "values": values, "feat_coord": feature_coord(feat)}

    @staticmethod
    def _neighbour_shift(cell: torch.Tensor, h: int, w: int):
        """The official (1 - cell) / (size - 1), from the first query's cell of each image."""
        return (1 - cell[:, :1, 0]) / max(h - 1, 1), (1 - cell[:, :1, 1]) / max(w - 1, 1)

    def query_reference(self, maps: dict, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        keys, values, feat_coord = maps["keys"], maps["values"], maps["feat_coord"]
        h, w = keys.shape[-2:]
        scale_hw = torch.tensor([h, w], dtype=coord.dtype, device=coord.device)
        ry, rx = self._neighbour_shift(cell, h, w)
        q = sample_nearest(keys, coord)  # (B, Q, 9C)
        cl = cell * scale_hw
        logits, vals = [], []
        for c in shifted_coords(coord, ry, rx):
            k = sample_nearest(keys, c)
            v = sample_nearest(values, c)
            rel = (coord - sample_nearest(feat_coord, c)) * scale_hw
            v_hat = v * self.imnet_v(torch.cat([v, rel, cl], dim=-1))
            if self.attention == "dot":
                k_hat = k * self.imnet_k(torch.cat([k, rel, cl], dim=-1))
                logits.append((q * k_hat).sum(-1))
            else:
                logits.append(self.imnet_a(torch.cat([k, rel, cl], dim=-1))[..., 0])
            vals.append(v_hat)
        attn = torch.softmax(torch.stack(logits, dim=-1), dim=-1)  # (B, Q, 4)
        x = (torch.stack(vals, dim=-1) * attn.unsqueeze(-2)).sum(-1)
        return self.imnet_q(x)

    # --- the restructured computation --------------------------------------------
    def _prepare_fast(self, feat: torch.Tensor, nonlocal_feat=None) -> dict:
        b, c, h, w = feat.shape
        # Row-major (pixel, channel) tables: every query gathers whole rows of them, and a
        # channel-major view would make each row gather touch 10C scattered cache lines.
        # Built straight into that layout, so at most one channel-major map (9C) is alive.
        keys = unfold3x3(feat).flatten(2).transpose(1, 2).contiguous()  # (B, HW, 9C)
        values = keys
        if self.non_local:
            if nonlocal_feat is None:
                nonlocal_feat = self.cs_attn(feat)
            values = torch.cat([keys, nonlocal_feat.flatten(2).transpose(1, 2)], dim=-1)  # (B, HW, 10C)
        key_dim, value_dim = keys.shape[-1], values.shape[-1]
        prep = {
            "size": (h, w),
            "values": values.reshape(b * h * w, value_dim),
            "centres": feature_coord(feat)[0].flatten(1).t().contiguous(),  # (HW, 2)
            "index": torch.arange(h * w, device=feat.device, dtype=torch.float32).view(1, 1, h, w).expand(b, 1, h, w),
        }
        wv, bv, _ = _split_first_layer(self.imnet_v, value_dim)
        prep["value_hidden"] = F.linear(values, wv, bv).reshape(b * h * w, -1)
        net = self.imnet_k if self.attention == "dot" else self.imnet_a
        wk, bk, _ = _split_first_layer(net, key_dim)
        prep["key_hidden"] = F.linear(keys, wk, bk).reshape(b * h * w, -1)
        prep["keys"] = keys.reshape(b * h * w, key_dim)
        return prep

    def _logit_tables(self, keys: torch.Tensor, h: int, w: int, r0: int = 0, r1: int | None = None):
        """``W_last^T (q * k)`` and ``(q * k) . b_last`` of imnet_k for the query at every LR
        pixel p of rows [r0, r1) and the neighbour at each of the 3x3 offsets p + d:
        (9 * B*(r1-r0)*W, hidden) and (9 * B*(r1-r0)*W,), offset-major (row
        ``d * B*(r1-r0)*W + pixel``). One offset at a time into the preallocated tables,
        so the temporaries are one offset's worth."""
        r1 = h if r1 is None else r1
        b, _, key_dim = keys.shape
        last = self.imnet_k.layers[-1]
        grid = keys.view(b, h, w, key_dim)
        lo, hi = max(r0 - 1, 0), min(r1 + 1, h)
        # Zero keys outside the image, as unfolding: rows r0-1 .. r1 and columns -1 .. w.
        padded = F.pad(grid[:, lo:hi], (0, 0, 1, 1, int(r0 == 0), int(r1 == h)))
        rows = r1 - r0
        n = b * rows * w
        weight = bias = None
        for dy in range(3):
            for dx in range(3):
                qk = (grid[:, r0:r1] * padded[:, dy:dy + rows, dx:dx + w]).view(n, key_dim)
                wd, bd = qk @ last.weight, qk @ last.bias
                if weight is None:  # in the products' dtype (bf16 under autocast)
                    weight = wd.new_empty(9, n, wd.shape[-1])
                    bias = bd.new_empty(9, n)
                weight[dy * 3 + dx], bias[dy * 3 + dx] = wd, bd
        return weight.view(9 * n, -1), bias.view(9 * n)

    def plan_queries(self, prep: dict, num_queries: int) -> None:
        """Told how many queries per image are coming (all chunks together): when they are
        dense (more than ``table_density`` per LR pixel, as when upscaling whole images),
        the logits use tabulated ``W^T (q * k)``. ``decode_chunked`` calls this before its
        first chunk, so the decision does not depend on the chunk size."""
        if (self.mode == "fast" and self.attention == "dot" and "logit_band" not in prep
                and num_queries >= self.table_density * prep["size"][0] * prep["size"][1]):
            prep["logit_band"] = None  # dense: tables wanted, none built yet

    def _logit_band(self, prep: dict, bsz: int, row_min: int, row_max: int):
        """The tables for LR rows ``row_min..row_max`` (the rows of a chunk's queries), built
        in bands of about ``table_band_elements`` values and kept while chunks stay inside
        them, so that row-ordered queries build each row once and the tables never hold the
        whole image (9 x hidden values per LR pixel: 340 MB at 192 x 192). Queries in no
        particular order would rebuild bands again and again; once the rows built reach
        three times the image's, the whole table is built instead."""
        h, w = prep["size"]
        band = prep["logit_band"]
        if band is not None and band[0] <= row_min and row_max < band[1]:
            return band
        hidden = self.imnet_k.layers[-1].in_features
        per_row = max(bsz * w * 9 * hidden, 1)
        rows = max(row_max - row_min + 1, self.table_band_elements // per_row, 1)
        r0, r1 = row_min, min(h, row_min + rows)
        built = prep.get("logit_rows_built", 0)
        if built >= 3 * h:
            r0, r1 = 0, h
        prep["logit_rows_built"] = built + (r1 - r0)
        weight, bias = self._logit_tables(prep["keys"].view(bsz, h * w, -1), h, w, r0, r1)
        prep["logit_band"] = band = (r0, r1, weight, bias)
        return band

    def _query_fast(self, prep: dict, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        h, w = prep["size"]
        bsz, nq = coord.shape[:2]
        scale_hw = torch.tensor([h, w], dtype=coord.dtype, device=coord.device)
        ry, rx = self._neighbour_shift(cell, h, w)
        index = prep["index"]
        # LR pixel of the query and of its four neighbours, by grid_sample's own rounding.
        q_idx = sample_nearest(index, coord)[..., 0].long()  # (B, Q)
        n_idx = torch.stack([sample_nearest(index, c)[..., 0] for c in shifted_coords(coord, ry, rx)],
                            dim=2).long()  # (B, Q, 4)
        rel = (coord.unsqueeze(2) - prep["centres"][n_idx]) * scale_hw  # (B, Q, 4, 2)
        pos = torch.cat([rel, (cell * scale_hw).unsqueeze(2).expand(-1, -1, 4, -1)], dim=-1).reshape(-1, 4)
        base = (torch.arange(bsz, device=coord.device) * (h * w)).view(bsz, 1, 1)
        flat = (n_idx + base).reshape(-1)  # rows of the per-pixel tables

        # Values: per-pixel first-layer half + per-query position half, then the rest.
        _, _, wv_pos = _split_first_layer(self.imnet_v, prep["values"].shape[-1])
        m_v = _run_tail(self.imnet_v, _first_layer(prep["value_hidden"], flat, pos, wv_pos))
        v = prep["values"].index_select(0, flat)
        v_hat = (v.mul_(m_v) if not torch.is_grad_enabled() else v * m_v).view(bsz * nq, 4, -1)

        net = self.imnet_k if self.attention == "dot" else self.imnet_a
        _, _, wk_pos = _split_first_layer(net, self.in_dim * 9)
        hk = _first_layer(prep["key_hidden"], flat, pos, wk_pos)
        if self.attention == "dot":
            self.plan_queries(prep, nq)
            if "logit_band" in prep:
                hk = _run_tail(self.imnet_k, hk, stop=-1)  # up to the last hidden layer
                q_row, q_col = q_idx // w, q_idx % w
                r0, r1, table_w, table_b = self._logit_band(prep, bsz, int(q_row.min()), int(q_row.max()))
                n_row, n_col = n_idx // w, n_idx % w
                offset = (n_row - q_row.unsqueeze(2) + 1) * 3 + (n_col - q_col.unsqueeze(2) + 1)
                image = torch.arange(bsz, device=coord.device).view(bsz, 1, 1) * (r1 - r0)
                pixel = (image + (q_row - r0).unsqueeze(2)) * w + q_col.unsqueeze(2)
                pair = (offset * (bsz * (r1 - r0) * w) + pixel).reshape(-1)
                logits = (table_w[pair] * hk).sum(-1) + table_b[pair]
            else:
                # Sparse queries (training batches): q . (k * imnet_k(...)) per query.
                q_rows = (q_idx + base[..., 0]).reshape(-1)
                m_k = _run_tail(self.imnet_k, hk).view(bsz * nq, 4, -1)
                qk = prep["keys"][flat].view(bsz * nq, 4, -1) * prep["keys"][q_rows].unsqueeze(1)
                logits = (qk * m_k).sum(-1)
        else:
            logits = _run_tail(self.imnet_a, hk)[..., 0]
        attn = torch.softmax(logits.view(bsz * nq, 1, 4), dim=-1)
        x = torch.bmm(attn, v_hat).view(bsz, nq, -1)  # attention-weighted sum of the values
        return self.imnet_q(x)

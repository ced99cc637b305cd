"""The official computations of CiaoSR, LIIF and ITSRN, kept apart from the production decoders.

Each function takes a production decoder (for its weights) and computes a chunk of
queries the way the official code does: every MLP layer per query and neighbour, and
for CiaoSR the unfolding and the non-local attention inside every chunk. The tests check
the production decoders against them, and the benchmarks time them as the official
code's cost; nothing else uses them.
"""

from __future__ import annotations

import torch

from .base import Decoder
from .ciaosr import CiaoSRDecoder, neighbour_shift
from .itsrn import ITSRNDecoder
from .liif import LIIFDecoder
from .sampling import feature_coord, sample_nearest, shifted_coords, unfold3x3


def ciaosr_query(dec: CiaoSRDecoder, feat: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
    keys = unfold3x3(feat)
    values = torch.cat([keys, dec.cs_attn(feat)], dim=1) if dec.non_local else keys
    feat_coord = feature_coord(feat)
    h, w = keys.shape[-2:]
    scale_hw = torch.tensor([h, w], dtype=coord.dtype, device=coord.device)
    ry, rx = neighbour_shift(cell, h, w)
    q = sample_nearest(keys, coord)  # (B, Q, 9C)
    cl = cell * scale_hw
    logits, vals = [], []
    for c in shifted_coords(coord, ry, rx):
        k = sample_nearest(keys, c)
        v = sample_nearest(values, c)
        rel = (coord - sample_nearest(feat_coord, c)) * scale_hw
        v_hat = v * dec.imnet_v(torch.cat([v, rel, cl], dim=-1))
        if dec.attention == "dot":
            k_hat = k * dec.imnet_k(torch.cat([k, rel, cl], dim=-1))
            logits.append((q * k_hat).sum(-1))
        else:
            logits.append(dec.imnet_a(torch.cat([k, rel, cl], dim=-1))[..., 0])
        vals.append(v_hat)
    attn = torch.softmax(torch.stack(logits, dim=-1), dim=-1)  # (B, Q, 4)
    x = (torch.stack(vals, dim=-1) * attn.unsqueeze(-2)).sum(-1)
    return dec.imnet_q(x)


def liif_query(dec: LIIFDecoder, feat: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
    latent = unfold3x3(feat) if dec.feat_unfold else feat
    feat_coord = feature_coord(feat)
    h, w = latent.shape[-2:]
    scale_hw = torch.tensor([h, w], dtype=coord.dtype, device=coord.device)
    preds, rels = [], []
    for c in dec.positions(coord, h, w):
        z = sample_nearest(latent, c)
        rel = (coord - sample_nearest(feat_coord, c)) * scale_hw
        inp = [z, rel]
        if dec.cell_decode:
            inp.append(cell * scale_hw)
        preds.append(dec.imnet(torch.cat(inp, dim=-1)))
        rels.append(rel)
    return dec.blend(preds, rels)


def itsrn_query(dec: ITSRNDecoder, feat: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
    """ITSRN as the official ``ITNSR.query_rgb``: per neighbour, the full 27C-wide transform
    matrix from (rel, scale token) applied to the looked-up unfolded feature."""
    latent = unfold3x3(feat) if dec.feat_unfold else feat
    feat_coord = feature_coord(feat)
    h, w = latent.shape[-2:]
    bs, nq = coord.shape[:2]
    scale_hw = torch.tensor([h, w], dtype=coord.dtype, device=coord.device)
    token = cell / 2 * scale_hw
    preds = []
    for c in dec.positions(coord, cell, h, w):
        value = sample_nearest(latent, c)
        rel = (coord - sample_nearest(feat_coord, c)) * scale_hw
        weight = dec.imnet(torch.cat([rel, token], dim=-1)).view(bs * nq, latent.shape[1], dec.out_dim)
        pred = torch.bmm(value.reshape(bs * nq, 1, -1), weight).view(bs, nq, -1)
        preds.append(pred + dec.Score(rel) if dec.local_ensemble else pred)
    if not dec.local_ensemble:
        return preds[0]
    return dec.Weight(torch.stack(preds, dim=-1))[..., 0]


QUERIES = {CiaoSRDecoder: ciaosr_query, LIIFDecoder: liif_query, ITSRNDecoder: itsrn_query}


class ReferenceDecoder(Decoder):
    """A production decoder's weights computed the official way: ``prepare`` keeps the
    features, every chunk recomputes everything from them (the official 30000-query
    chunks are the caller's default), one chunk after another."""

    side_by_side = False

    def __init__(self, decoder: Decoder):
        if type(decoder) not in QUERIES:
            raise ValueError(f"no reference computation for {type(decoder).__name__}")
        super().__init__(decoder.in_dim)
        self.inner = decoder

    def prepare(self, feat: torch.Tensor) -> torch.Tensor:
        return feat

    def query(self, feat: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        return QUERIES[type(self.inner)](self.inner, feat, coord, cell)


def reference_model(model):
    """The same model (an ``ImplicitSRModel``, weights shared) decoding as the official
    code does."""
    ref = type(model)(model.encoder, ReferenceDecoder(model.decoder), mean=tuple(model.mean.flatten().tolist()),
                          std=tuple(model.std.flatten().tolist()), residual=model.residual)
    return ref.to(model.mean.device).train(model.training)

"""The restructured CiaoSR decoder computes what the official-style reference computes,
forward and backward, for every switch and for batches with different scales."""

from __future__ import annotations

import pytest
import torch

import ciaosr
from ciaosr.geometry import make_cell, make_coord
from ciaosr.decoders.reference import reference_model


def _pair(decoder_args):
    """A small CiaoSR and the same weights decoding as the official code does."""
    torch.manual_seed(1)
    fast = ciaosr.build_model("edsr-baseline-ciaosr", {"num_blocks": 1, "mid_channels": 8},
                              {"hidden": [32, 32], **decoder_args})
    return fast, reference_model(fast)


def _batch_queries():
    """Two images, each with its own (asymmetric, non-integer) output grid, 150 queries."""
    coords, cells = [], []
    for h, w in [(17, 30), (29, 21)]:
        g = torch.Generator().manual_seed(h)
        idx = torch.randperm(h * w, generator=g)[:150]
        coords.append(make_coord((h, w))[idx])
        cells.append(make_cell((h, w), 150))
    return torch.stack(coords), torch.stack(cells)


@pytest.mark.parametrize("decoder_args", [{}, {"non_local": False}, {"attention": "mlp"}],
                         ids=["full", "no-nonlocal", "mlp-attention"])
@pytest.mark.parametrize("density", [0.0, float("inf")], ids=["logit-table", "logit-per-query"])
def test_fast_equals_reference_forward_and_backward(decoder_args, density):
    fast, ref = _pair(decoder_args)
    fast.decoder.table_density = density
    lr = torch.rand(2, 3, 7, 9)
    coord, cell = _batch_queries()
    out_fast = fast(lr, coord, cell)
    out_ref = ref(lr, coord, cell)
    assert (out_fast - out_ref).abs().max().item() < 1e-5
    params = list(fast.parameters())  # shared by both
    grads = torch.autograd.grad(out_fast.square().mean(), params)
    ref_grads = torch.autograd.grad(out_ref.square().mean(), params)
    overall = max(g.abs().max().item() for g in ref_grads)
    for (name, _), g, r in zip(fast.named_parameters(), grads, ref_grads):
        assert torch.allclose(g, r, rtol=1e-4, atol=1e-5 * overall), name


def test_fast_path_on_full_grids_and_borders():
    fast, ref = _pair({})
    lr = torch.rand(1, 3, 6, 5)
    with torch.no_grad():
        for h, w in [(15, 12), (6, 5), (4, 3), (13, 19)]:  # x2.5, x1, downscale, odd asymmetric
            coord = make_coord((h, w)).unsqueeze(0)
            cell = make_cell((h, w), h * w).unsqueeze(0)
            assert (fast(lr, coord, cell) - ref(lr, coord, cell)).abs().max().item() < 1e-5


def _decode(model, lr, size):
    """Whole-image decoding in chunks, returning the output and the prepared tables."""
    coord = make_coord(size).unsqueeze(0).expand(lr.shape[0], -1, -1)
    cell = make_cell(size, coord.shape[1]).unsqueeze(0).expand(lr.shape[0], -1, -1)
    enc = model.encode(lr)
    return model.decode_chunked(enc, coord, cell), enc.prepared


def test_chunked_upscaling_tabulates_the_logits_whatever_the_chunk_size():
    """Whole-image upscaling is dense however small the chunks are: the logit tables are
    built once (decided on all the queries, not on one chunk) and the result is the
    reference's."""
    fast, ref = _pair({})
    fast.decoder.cpu_chunk = 37  # far fewer queries per chunk than LR pixels
    lr = torch.rand(1, 3, 8, 9)
    with torch.no_grad():
        out, prep = _decode(fast, lr, (24, 27))
        assert (out - _decode(ref, lr, (24, 27))[0]).abs().max().item() < 1e-5
        assert prep.tables.builds == [(0, 8)]  # one band: the whole image fits 16 MB
        _, prep = _decode(fast, lr, (10, 11))  # 110 queries on 72 LR pixels: sparse, no tables
        assert prep.tables is None


def test_banded_logit_tables_in_any_query_order(monkeypatch):
    """Tables built a few LR rows at a time give the reference's result for row-ordered
    queries (each band built once; chunks decoded side by side, asking out of order, at
    most twice) and for shuffled ones (bands rebuilt, then the whole table once the rows
    built reach three times the image's)."""
    import ciaosr.models.sr_model as sr_model

    fast, ref = _pair({})
    fast.decoder.cpu_chunk = 50
    fast.decoder.table_band_elements = 1  # one LR row per band
    lr = torch.rand(2, 3, 7, 6)
    coord = make_coord((21, 18)).unsqueeze(0).expand(2, -1, -1)
    cell = make_cell((21, 18), 21 * 18).unsqueeze(0).expand(2, -1, -1)
    with torch.no_grad():
        expected = ref.decode_chunked(ref.encode(lr), coord, cell)
        enc = fast.encode(lr)
        out = fast.decode_chunked(enc, coord, cell)  # side by side where torch has threads
        assert (out - expected).abs().max().item() < 1e-5
        built = [r1 - r0 for r0, r1 in enc.prepared.tables.builds]
        assert sum(built) <= 2 * (7 + 6) and max(built) <= 2
        monkeypatch.setattr(sr_model, "chunk_workers", lambda *args: 1)  # one chunk after another
        enc = fast.encode(lr)
        out = fast.decode_chunked(enc, coord, cell)
        assert (out - expected).abs().max().item() < 1e-5
        built = [r1 - r0 for r0, r1 in enc.prepared.tables.builds]
        assert sum(built) <= 7 + 6 and max(built) <= 2  # row order: about one build per row
        perm = torch.randperm(coord.shape[1], generator=torch.Generator().manual_seed(0))
        enc = fast.encode(lr)
        out = fast.decode_chunked(enc, coord[:, perm], cell[:, perm])
        assert (out - expected[:, perm]).abs().max().item() < 1e-5
        built = [r1 - r0 for r0, r1 in enc.prepared.tables.builds]
        assert 7 in built and sum(built) <= 3 * 7 + 7  # fell back to the whole table


def test_reference_mode_recomputes_nonlocal_per_chunk():
    """The reference computation runs cs_attn in every query chunk, as the official code
    does; the production decoder once per image."""
    fast, ref = _pair({})
    calls = []
    fast.decoder.cs_attn.register_forward_hook(lambda *a: calls.append(1))  # shared by both
    lr = torch.rand(1, 3, 6, 6)
    fast.upsample(lr, (24, 24), chunk=100)
    assert len(calls) == 1
    ref.upsample(lr, (24, 24), chunk=100)
    assert len(calls) == 1 + 6

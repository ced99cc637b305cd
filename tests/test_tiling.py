"""Tiled inference: geometry, coordinates and cells per tile, blending, exactness."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ciaosr
from ciaosr.geometry import make_cell, make_coord
from ciaosr.inference.tiling import (
    MAX_AUTO_TILE, MIN_AUTO_TILE, auto_chunk, auto_tile, axis_weights,
    default_overlap, plan_tiles, tile_spans, tiled_upsample,
)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return ciaosr.build_model("edsr-baseline-ciaosr", {"num_blocks": 1, "mid_channels": 8}, {"hidden": [16]}).eval()


def gradient(h, w):
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return (torch.stack([yy, xx, (yy + xx) / 2]) * 0.8 + 0.1).unsqueeze(0)


class BilinearProbe(torch.nn.Module):
    """A 'model' that bilinearly samples its (tile) input at the query coordinates and
    records the cells it is given in LR pixels of the encoded input."""

    def __init__(self):
        super().__init__()
        self.cells_lr_px = []

    def encode(self, lr):
        return lr

    def decode(self, enc, coord, cell):
        h, w = enc.shape[-2:]
        self.cells_lr_px.append(cell[0, 0] * torch.tensor([h, w]) / 2)
        out = F.grid_sample(enc, coord.flip(-1).unsqueeze(1), mode="bilinear", padding_mode="border",
                            align_corners=False)
        return out[:, :, 0, :].permute(0, 2, 1)

    def decode_chunked(self, enc, coord, cell, chunk=30000, on_chunk=None):
        return self.decode(enc, coord, cell)

    def to_image(self, pred):
        return pred

    def upsample(self, lr, size, chunk=30000, on_chunk=None):
        b = lr.shape[0]
        coord = make_coord(size).unsqueeze(0).expand(b, -1, -1)
        cell = make_cell(size, coord.shape[1]).unsqueeze(0).expand(b, -1, -1)
        out = self.decode(self.encode(lr), coord, cell)
        return out.view(b, size[0], size[1], 3).permute(0, 3, 1, 2).clamp(0, 1)


@pytest.mark.parametrize("n,t,o", [(100, 40, 10), (1024, 480, 32), (640, 480, 32), (33, 16, 4), (17, 16, 4),
                                   (500, 64, 16)])
def test_tiles_cover_with_the_nominal_overlap(n, t, o):
    spans = tile_spans(n, t, o)
    assert spans[0][0] == 0 and spans[-1][1] == n
    assert len({b - a for a, b in spans}) == 1 and spans[0][1] - spans[0][0] <= t  # equal, within the tile
    for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
        assert o <= a1 - b0 <= o + len(spans)  # neighbours overlap by the nominal overlap, up to rounding
        assert b0 > a0
    assert tile_spans(640, 480, 32) == [(0, 336), (304, 640)]  # not two 480s overlapping by 320


@pytest.mark.parametrize("n_lr,n_out,t,o", [(100, 370, 40, 10), (64, 64, 24, 6), (50, 23, 16, 4), (640, 2560, 480, 32)])
def test_blend_weights_partition_the_output(n_lr, n_out, t, o):
    spans = tile_spans(n_lr, t, o)
    ws = [axis_weights(n_lr, n_out, spans, i, o) for i in range(len(spans))]
    assert np.allclose(np.sum(ws, axis=0), 1.0)  # complementary ramps
    u = (np.arange(n_out) + 0.5) * n_lr / n_out
    for i, ((s, e), wt) in enumerate(zip(spans, ws)):
        # Outside the tile, and within a quarter overlap of an edge shared with a neighbour: no weight.
        assert (wt[(u < s) | (u > e)] == 0).all()
        if i > 0:
            assert (wt[u < s + o / 4] == 0).all()
        if i < len(spans) - 1:
            assert (wt[u > e - o / 4] == 0).all()
    # Each output pixel is decoded by one tile, except within the ramps (half an overlap each).
    decoded = sum(int((wt > 0).sum()) for wt in ws)
    assert decoded <= n_out + (len(spans) - 1) * (o / 2 * n_out / n_lr + 1)


def test_smaller_than_one_tile_is_exactly_untiled(tiny):
    x = torch.rand(1, 3, 12, 10)
    ref = tiny.upsample(x, (44, 37))
    out = tiled_upsample(tiny, x, (44, 37), tile=16)
    assert torch.equal(out, ref)
    # Through the public API as well (tensor in, tensor out).
    api = ciaosr.upscale(x[0], size=(37, 44), model=tiny, tile=64)
    assert torch.equal(api, ref[0])


def test_tile_coordinates_and_cells_match_the_whole_image():
    # With a bilinear 'model' the tiled output of a linear ramp must equal the untiled
    # one wherever the tiles blend: this checks every tile's coordinate frame.
    probe = BilinearProbe()
    x = gradient(40, 52)
    size = (148, 97)  # x3.7 rows, x1.87 cols: different, non-integer scales per axis
    ref = probe.upsample(x, size)
    out = tiled_upsample(probe, x, size, tile=16, overlap=6, chunk=500)
    assert (out - ref).abs().max() < 1e-5
    # The cell, in LR pixels of the tile the decoder sees, is the global one: H/h, W/w.
    cells = torch.stack(probe.cells_lr_px[1:])  # [0] is the untiled reference call
    expect = torch.tensor([40 / 148, 52 / 97])
    assert torch.allclose(cells, expect.expand_as(cells), atol=1e-6)


def test_gradient_tiled_matches_untiled(tiny):
    x = gradient(64, 56)
    ref = tiny.upsample(x, (192, 168))
    out = tiled_upsample(tiny, x, (192, 168), tile=24)
    assert (out - ref).abs().max() < 0.01
    # No seam: the tiled output's local variation at tile borders is the untiled one's.
    d_ref = (ref[..., :, 1:] - ref[..., :, :-1]).abs()
    d_out = (out[..., :, 1:] - out[..., :, :-1]).abs()
    assert (d_out - d_ref).abs().max() < 0.01


def test_chunk_size_does_not_change_the_result(tiny):
    x = gradient(24, 20)
    a = tiled_upsample(tiny, x, (50, 43), tile=16, chunk=397)
    b = tiled_upsample(tiny, x, (50, 43), tile=16, chunk=30000)
    assert torch.allclose(a, b, atol=1e-6)


def test_flat_colour_stays_flat_with_the_default_model():
    model = ciaosr.load_model()
    colour = torch.tensor([0.4, 0.32, 0.6]).view(1, 3, 1, 1)
    flat = colour.expand(1, 3, 40, 36).contiguous()
    ref = model.upsample(flat, (80, 72))
    out = tiled_upsample(model, flat, (80, 72), tile=24)
    assert (out - ref).abs().max() < 2 / 255
    spread = out.amax(dim=(2, 3)) - out.amin(dim=(2, 3))
    spread_ref = ref.amax(dim=(2, 3)) - ref.amin(dim=(2, 3))
    assert (spread <= spread_ref + 1e-3).all()
    assert (out - colour).abs().max() < 4 / 255


def test_auto_tile_follows_the_budget(tiny):
    liif = ciaosr.build_model("edsr-baseline-liif")
    ciao = ciaosr.build_model("edsr-baseline-ciaosr")
    assert auto_tile(liif, budget=1) == MIN_AUTO_TILE
    assert auto_tile(liif, budget=1 << 40) == MAX_AUTO_TILE
    assert auto_tile(ciao, budget=1 << 40) == ciao.decoder.max_tile == 192  # the official test tile
    small, big = auto_tile(ciao, budget=256 << 20), auto_tile(ciao, budget=2048 << 20)
    assert MIN_AUTO_TILE <= small < big == 192  # the CPU's 2 GiB budget fits the official tile
    assert 1024 <= auto_chunk(ciao, budget=64 << 20) < auto_chunk(ciao, budget=2048 << 20) <= 30000
    plan = plan_tiles(tiny, "cpu")
    assert plan.tile >= MIN_AUTO_TILE and plan.overlap == default_overlap(plan.tile)
    with pytest.raises(ValueError):
        plan_tiles(tiny, "cpu", tile=4)


class Stop(Exception):
    pass


def test_progress_reports_tiles_and_chunks_and_can_stop_the_work(tiny):
    x = gradient(40, 36)
    calls = []
    ref = tiled_upsample(tiny, x, (100, 90), tile=16, chunk=300)
    out = tiled_upsample(tiny, x, (100, 90), tile=16, chunk=300, on_progress=calls.append)
    assert torch.equal(out, ref)  # reporting changes nothing
    total = len(tile_spans(40, 16, default_overlap(16))) * len(tile_spans(36, 16, default_overlap(16)))
    assert total > 4 and all(p.tiles_total == total for p in calls)
    assert calls[0].tiles_done == 0 and calls[0].fraction == 0
    assert calls[-1].tiles_done == total and calls[-1].fraction == pytest.approx(1.0)
    fractions = [p.fraction for p in calls]
    assert fractions == sorted(fractions) and all(0 <= f <= 1 for f in fractions)
    done = [p.tiles_done for p in calls]
    assert done == sorted(done) and set(done) == set(range(total + 1))
    # Chunks are reported inside a tile: fractions strictly between two tile counts.
    assert any(p.fraction * total - p.tiles_done > 0 for p in calls)

    # One tile (the image fits it): reported by chunks of the whole-image decode.
    one = []
    small = tiled_upsample(tiny, x[..., :12, :12], (30, 30), tile=16, chunk=200, on_progress=one.append)
    assert torch.equal(small, tiny.upsample(x[..., :12, :12], (30, 30)))
    assert [p.tiles_total for p in one] == [1] * len(one) and one[-1].tiles_done == 1
    assert len(one) >= 2 + 900 // 200 and any(0 < p.fraction < 1 for p in one)

    # An exception from the callback stops the work at once: no tile is decoded after it.
    encoded = []
    real_encode = tiny.encode
    def stop_after_two_tiles(p):
        if p.tiles_done == 2:
            raise Stop
    tiny.encode = lambda lr: encoded.append(lr.shape) or real_encode(lr)
    try:
        with pytest.raises(Stop):
            tiled_upsample(tiny, x, (100, 90), tile=16, on_progress=stop_after_two_tiles)
    finally:
        del tiny.encode
    assert len(encoded) == 2

"""The cross-scale non-local attention: odd sizes and tiling of large inputs."""

from __future__ import annotations

import torch

from ciaosr.decoders.nonlocal_attention import CrossScaleAttention


def _attn(**kw):
    torch.manual_seed(0)
    return CrossScaleAttention(8, **kw).eval()


@torch.no_grad()
def test_odd_sizes_keep_shape_and_are_finite():
    a = _attn()
    for h, w in [(7, 9), (5, 4), (2, 3)]:
        y = a(torch.rand(2, 8, h, w))
        assert y.shape == (2, 8, h, w) and torch.isfinite(y).all()


def _whole_map(a, x):
    """``a`` searching the whole of ``x``, untiled (the declared ``tile=None``)."""
    tile, a.tile = a.tile, None
    try:
        return a(x)
    finally:
        a.tile = tile


@torch.no_grad()
def test_input_within_one_tile_is_not_tiled():
    a = _attn(tile=12, tile_overlap=4)
    x = torch.rand(1, 8, 12, 11)
    assert torch.equal(a(x), _whole_map(a, x))


@torch.no_grad()
def test_tiles_search_their_own_window_and_average_overlaps():
    a = _attn(tile=12, tile_overlap=4)
    x = torch.rand(1, 8, 10, 30)  # tiles of 10 x 12 at columns 0, 8, 16, 18
    y = a(x)
    first = _whole_map(a, x[..., 0:12])
    assert torch.allclose(y[..., 0:8], first[..., 0:8], atol=1e-6)  # covered by one tile only
    second = _whole_map(a, x[..., 8:20])
    assert torch.allclose(y[..., 8:12], (first[..., 8:12] + second[..., 0:4]) / 2, atol=1e-6)
    a.tile = None
    assert not torch.allclose(a(x), y)  # a whole-map search differs: the window matters


@torch.no_grad()
def test_row_bands_compute_the_same_attention():
    """Query rows are processed in bands to bound memory; the result must not depend on it."""
    a = _attn(tile=None)
    x = torch.rand(2, 8, 13, 10)
    a.band_elements = 10**9
    whole = a(x)
    for band_elements in (1, 7 * 5 * 5):  # one row per band; bands of 5 rows
        a.band_elements = band_elements
        assert torch.allclose(a(x), whole, atol=1e-5)


def _straightforward(a: CrossScaleAttention, x: torch.Tensor) -> torch.Tensor:
    """The attention as the released code writes it: whole map, conv_transpose2d, then down."""
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    xp = F.pad(x, (0, w % 2, 0, h % 2), mode="reflect") if (h % 2 or w % 2) else x
    embed, match = a.conv_assembly(xp), a.conv_match_1(xp)
    ref = a.conv_match_2(F.interpolate(xp, scale_factor=0.5, mode="bilinear", align_corners=False))
    outs = []
    for i in range(x.shape[0]):
        vals = F.unfold(embed[i:i + 1], 6, padding=2, stride=2)[0].t()
        vals = vals.reshape(vals.shape[0], -1, 6, 6)
        keys = F.unfold(ref[i:i + 1], 3, padding=1)[0].t().reshape(vals.shape[0], -1, 3, 3)
        keys = keys / torch.max(keys.pow(2).sum((1, 2, 3), keepdim=True).sqrt(), a.escape_NaN)
        attn = F.softmax(F.conv2d(match[i:i + 1], keys, padding=1) * 10, dim=1)
        outs.append(a.down(F.conv_transpose2d(attn, vals, stride=2, padding=2)) / 6)
    return torch.cat(outs)[..., :h, :w]


@torch.no_grad()
def test_fused_paste_and_down_equal_the_released_formulation():
    a = _attn(tile=None)
    for shape in [(2, 8, 12, 10), (1, 8, 7, 9), (1, 8, 2, 2), (1, 8, 3, 6)]:
        x = torch.rand(*shape)
        for band in (10**9, 1):
            a.band_elements = band
            assert torch.allclose(a(x), _straightforward(a, x), atol=1e-5), (shape, band)

"""MATLAB-exact bicubic resize: the real MATLAB outputs in shared/, and the rules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ciaosr.data.benchmark import load_rgb, lr_filename, modcrop
from ciaosr.imageio import list_images
from ciaosr.matlab_bicubic import contributions, imresize, imresize_uint8, output_size

PREMADE = [("Set5", 2), ("Set5", 3), ("Set5", 4), ("DIV2K-mini", 4), ("Flickr2K-mini", 4)]


@pytest.mark.parametrize("dataset,scale", PREMADE)
def test_reproduces_premade_matlab_lr(shared, dataset, scale):
    root = shared(f"datasets/{dataset}")
    lr_dir = root / "LR_bicubic" / f"X{scale}"
    hr_files = list_images(root / "HR")
    assert hr_files, "no HR images"
    for hr_path in hr_files:
        lr_path = lr_dir / lr_filename(hr_path.stem, scale)
        assert lr_path.is_file(), lr_path
        hr = modcrop(load_rgb(hr_path), scale)
        expected = load_rgb(lr_path)
        got = imresize_uint8(hr.unsqueeze(0), scale=1 / scale)[0]
        assert got.shape == expected.shape, hr_path.name
        diff = (got.int() - expected.int()).abs()
        assert int(diff.max()) == 0, f"{hr_path.name} x{scale}: {int((diff > 0).sum())} pixels differ"


# An independent, literal transcription of MATLAB's imresize (contributions with the
# aux index table, resizeAlongDim, dimension order), on dense float64 matrices.
def _ref_matrix(in_len, out_len, scale):
    def cubic(x):
        a = abs(x)
        if a <= 1:
            return 1.5 * a ** 3 - 2.5 * a ** 2 + 1
        if a <= 2:
            return -0.5 * a ** 3 + 2.5 * a ** 2 - 4 * a + 2
        return 0.0

    width = 4.0
    h = cubic
    if scale < 1:
        width = 4.0 / scale
        h = lambda x: scale * cubic(scale * x)  # noqa: E731
    aux = list(range(1, in_len + 1)) + list(range(in_len, 0, -1))
    m = np.zeros((out_len, in_len))
    for x in range(1, out_len + 1):
        u = x / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        taps = math.ceil(width) + 2
        ws = [h(u - (left + k)) for k in range(taps)]
        total = sum(ws)
        for k in range(taps):
            src = aux[(left + k - 1) % len(aux)] - 1
            m[x - 1, src] += ws[k] / total
    return m


def _ref_resize(img, out_hw):
    in_h, in_w = img.shape
    sh, sw = out_hw[0] / in_h, out_hw[1] / in_w
    mh, mw = _ref_matrix(in_h, out_hw[0], sh), _ref_matrix(in_w, out_hw[1], sw)
    if sh <= sw:
        return (mh @ img) @ mw.T
    return mh @ (img @ mw.T)


@pytest.mark.parametrize("in_hw,out_hw", [
    ((7, 9), (3, 4)),       # odd sizes, non-integer downscale
    ((13, 5), (5, 2)),
    ((5, 7), (13, 18)),     # upscale x2.5-ish
    ((6, 6), (17, 4)),      # up in H, down in W
    ((3, 2), (1, 1)),       # tiny: kernel wider than the image
    ((11, 10), (4, 31)),
])
def test_matches_literal_matlab_transcription(in_hw, out_hw):
    g = torch.Generator().manual_seed(1)
    img = torch.rand(in_hw, generator=g, dtype=torch.float64) * 255
    ref = _ref_resize(img.numpy(), out_hw)
    got = imresize(img[None, None], size=out_hw)[0, 0].numpy()
    assert got.shape == out_hw
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10)


def test_scale_gives_ceil_output_size_and_upscales():
    x = torch.rand(2, 3, 5, 7, dtype=torch.float64)
    assert imresize(x, 2).shape == (2, 3, 10, 14)
    assert imresize(x, 2.5).shape == (2, 3, 13, 18)
    assert output_size((5, 7), 2.5) == (13, 18)
    assert imresize(x, (3, 0.5)).shape == (2, 3, 15, 4)
    assert imresize(x, size=(11, 13)).shape == (2, 3, 11, 13)
    assert imresize(x, 1 / 3).shape == (2, 3, 2, 3)


def test_constant_image_stays_constant_and_dtype_kept():
    x = torch.full((1, 3, 9, 11), 0.3, dtype=torch.float32)
    for kw in ({"scale": 0.25}, {"scale": 3}, {"size": (4, 30)}):
        y = imresize(x, **kw)
        assert y.dtype == torch.float32
        torch.testing.assert_close(y, torch.full_like(y, 0.3), atol=1e-6, rtol=0)


def test_integer_upscale_of_interior_samples_cubic_kernel():
    # Upscaling x2: each output centre is 0.25 px from an input centre; weights are
    # the a=-0.5 cubic at distances 1.75, 0.75, 0.25, 1.25.
    w, idx = contributions(10, 20, 2.0, True)
    row = 8  # output pixel 9 (1-based): u = 4.75
    nz = {int(i): float(v) for i, v in zip(idx[row], w[row]) if v != 0}
    expected = {2: -0.0234375, 3: 0.2265625, 4: 0.8671875, 5: -0.0703125}
    assert nz.keys() == expected.keys()
    for k, v in expected.items():
        assert nz[k] == pytest.approx(v, abs=1e-15)


def test_uint8_rounds_between_passes_and_orders_dims_like_matlab():
    g = torch.Generator().manual_seed(3)
    img = torch.randint(0, 256, (1, 3, 24, 30), generator=g, dtype=torch.uint8)

    def round_u8(t):
        return torch.floor(t + 0.5).clamp(0, 255)

    # Scales (0.5 in H, 1/3 in W): MATLAB resizes W (the smaller scale) first.
    got = imresize_uint8(img, size=(12, 10))
    w_first = round_u8(imresize(round_u8(imresize(img.double(), size=(24, 10))), size=(12, 10)))
    h_first = round_u8(imresize(round_u8(imresize(img.double(), size=(12, 30))), size=(12, 10)))
    assert torch.equal(got, w_first.to(torch.uint8))
    assert not torch.equal(w_first, h_first)  # the order is observable


def test_bad_arguments():
    x = torch.rand(1, 1, 4, 4)
    with pytest.raises(TypeError):
        imresize(x.to(torch.uint8), 2)
    with pytest.raises(TypeError):
        imresize_uint8(x, 2)
    with pytest.raises(ValueError):
        imresize(x)
    with pytest.raises(ValueError):
        imresize(x, 2, size=(8, 8))
    with pytest.raises(ValueError):
        imresize(x, -1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_matches_cpu():
    x = torch.randint(0, 256, (2, 3, 37, 45), dtype=torch.uint8)
    assert torch.equal(imresize_uint8(x.cuda(), scale=1 / 3).cpu(), imresize_uint8(x, scale=1 / 3))
    xf = x.double() / 255
    torch.testing.assert_close(imresize(xf.cuda(), 2.5).cpu(), imresize(xf, 2.5), atol=1e-12, rtol=0)

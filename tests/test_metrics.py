"""PSNR under both protocols, and SSIM against scikit-image."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ciaosr.metrics.psnr import psnr_liif, psnr_mmedit, shave, to_uint8
from ciaosr.metrics.ssim import ssim, ssim_y

skm = pytest.importorskip("skimage.metrics")


def _sk_ssim(a, b):
    return skm.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False, data_range=255)


@pytest.mark.parametrize("shape", [(11, 11), (12, 40), (97, 64), (256, 255)])
def test_ssim_matches_scikit_image_random(shape):
    rng = np.random.default_rng(sum(shape))
    a = rng.uniform(0, 255, shape)
    b = np.clip(a + rng.normal(0, 25, shape), 0, 255)
    assert ssim(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(_sk_ssim(a, b), abs=1e-4)


def test_ssim_matches_scikit_image_on_real_y(shared):
    from ciaosr.data.benchmark import load_rgb
    from ciaosr.matlab_bicubic import imresize
    from ciaosr.metrics.psnr import matlab_y

    root = shared("datasets/Set5")
    hr = load_rgb(root / "HR" / "butterfly.png").double()[None] / 255
    lr = load_rgb(root / "LR_bicubic" / "X4" / "butterflyx4.png").double()[None] / 255
    sr = imresize(lr, size=hr.shape[-2:]).clamp(0, 1)
    y_sr = shave(matlab_y(sr), 4)[0, 0]
    y_hr = shave(matlab_y(hr), 4)[0, 0]
    ours = ssim(y_sr, y_hr)
    assert ours == pytest.approx(_sk_ssim(y_sr.numpy(), y_hr.numpy()), abs=1e-4)
    assert 0.5 < ours < 1.0
    # ssim_y does the same Y, shave and SSIM in one call.
    assert ssim_y(sr[0], hr[0], 4, protocol="mmedit") == pytest.approx(
        _sk_ssim(shave(matlab_y(to_uint8(sr).double() / 255), 4)[0, 0].numpy(), y_hr.numpy()), abs=1e-4)


def test_ssim_identical_is_one_and_batches():
    x = torch.rand(3, 1, 20, 30, dtype=torch.float64) * 255
    assert ssim(x, x) == pytest.approx([1.0, 1.0, 1.0])
    with pytest.raises(ValueError):
        ssim(x[..., :10, :], x[..., :10, :])  # smaller than the window


def test_psnr_liif_rgb_constant_error():
    hr = torch.full((3, 40, 40), 0.5, dtype=torch.float64)
    sr = hr + 0.1  # MSE 0.01 -> 20 dB
    assert psnr_liif(sr, hr, 4, rgb=True) == pytest.approx(20.0, abs=1e-9)


def test_psnr_liif_y_of_difference():
    hr = torch.zeros(3, 30, 30, dtype=torch.float64)
    sr = hr.clone()
    sr[0] += 0.1  # red only: Y difference 0.1 * 65.738 / 256
    expected = -10 * math.log10((0.1 * 65.738 / 256) ** 2)
    assert psnr_liif(sr, hr, 2) == pytest.approx(expected, abs=1e-9)


def test_psnr_liif_shaves_s_for_benchmarks_and_s_plus_6_for_div2k():
    hr = torch.zeros(1, 3, 40, 40, dtype=torch.float64)
    sr = hr.clone()
    sr[..., :3, :] = 1.0  # error only in the top 3 rows
    assert psnr_liif(sr, hr, 3) == [math.inf]  # shave 3: nothing left
    assert psnr_liif(sr, hr, 2) != [math.inf]
    sr = hr.clone()
    sr[..., :, -9:] = 1.0  # error only in the 9 rightmost columns
    assert psnr_liif(sr, hr, 3, rgb=True) == [math.inf]  # shave 3 + 6
    assert psnr_liif(sr, hr, 2, rgb=True) != [math.inf]


def test_psnr_liif_matches_official_parity_value(shared):
    data = torch.load(shared("parity/liif_edsr_official_butterfly.pt"), weights_only=True)
    case = data["cases"][0]
    th, tw = case["target_size"]
    sr = case["pred"].view(1, th, tw, 3).permute(0, 3, 1, 2)
    hr = data["hr"].double() / 255
    assert psnr_liif(sr, hr, 4)[0] == pytest.approx(case["psnr_benchmark_x4"], abs=1e-4)
    assert psnr_liif(sr, hr, 4, rgb=True, border=0)[0] == pytest.approx(case["psnr_rgb_noshave"], abs=1e-4)


def test_psnr_mmedit_uint8_one_level_everywhere():
    hr = torch.full((3, 30, 30), 100, dtype=torch.uint8)
    sr = hr + 1  # Y changes by (65.481 + 128.553 + 24.966) / 255
    expected = 20 * math.log10(255 / (219.0 / 255))
    assert psnr_mmedit(sr, hr, 4) == pytest.approx(expected, abs=1e-9)


def test_psnr_mmedit_rounds_float_output_first():
    g = torch.Generator().manual_seed(0)
    hr = torch.randint(0, 256, (3, 32, 32), generator=g, dtype=torch.uint8)
    sr = (hr.double() + 0.4) / 255  # rounds back to hr
    assert psnr_mmedit(sr, hr, 2) == math.inf
    assert psnr_liif(sr, hr.double() / 255, 2) < 60  # the LIIF protocol does not round
    assert torch.equal(to_uint8(sr), hr)


def test_shape_mismatch_and_tiny_images_raise():
    with pytest.raises(ValueError):
        psnr_liif(torch.zeros(3, 10, 10), torch.zeros(3, 10, 12), 2)
    with pytest.raises(ValueError):
        psnr_liif(torch.zeros(3, 8, 8), torch.zeros(3, 8, 8), 4)

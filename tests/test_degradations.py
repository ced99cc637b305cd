"""The real-world degradations (ciaosr.data.degradations): kernels, noise, JPEG, USM,
the two pipelines and their settings.

Expected values come from independent computations written here from the definitions
(SciPy's multivariate normal, Bessel function and filters, NumPy's linear algebra) or
from Pillow's libjpeg; statistics are checked on seeded draws, so every run draws the
same numbers.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import ndimage, special, stats

from ciaosr.data.degradations import KERNEL_TYPES, DegradationSettings, degrade, jpeg_compress, usm_sharpen
from ciaosr.data.degradations.draws import Draws
from ciaosr.data.degradations.filtering import filter2d, mirror_pad
from ciaosr.data.degradations.jpeg import quality_tables
from ciaosr.data.degradations.kernels import gaussian_kernels, mixed_kernels, random_mixed_kernels, sinc_kernels
from ciaosr.data.degradations.noise import add_mixed_gaussian, add_poisson, colour_matrices, correlated_matrices, \
    grey_matrices
from ciaosr.errors import CiaosrError

from conftest import REPO


def textured(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """(b, 3, h, w) in [0, 1]: smooth random colours with some fine detail."""
    g = torch.Generator().manual_seed(seed)
    coarse = F.interpolate(torch.rand(b, 3, max(h // 8, 2), max(w // 8, 2), generator=g), size=(h, w),
                           mode="bicubic", align_corners=False)
    return (0.8 * coarse + 0.2 * torch.rand(b, 3, h, w, generator=g)).clamp(0, 1)


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(peak ** 2 / mse)


def draws(seed: int = 0) -> Draws:
    return Draws(torch.Generator().manual_seed(seed), "cpu")


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    ax = np.arange(size) - size // 2
    rows, cols = np.meshgrid(ax, ax, indexing="ij")
    return rows, cols


def _t(*values) -> list[torch.Tensor]:
    return [torch.tensor([float(v)]) for v in values]


# --------------------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------------------
def _reference_cov(sx: float, sy: float, theta: float) -> np.ndarray:
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    return rot @ np.diag([sx ** 2, sy ** 2]) @ rot.T


@pytest.mark.parametrize("size,sx,sy,theta", [(21, 1.2, 2.0, 0.5), (15, 0.7, 0.3, -2.0), (7, 3.0, 3.0, 0.0)])
def test_gaussian_kernel_is_the_normal_density_on_its_grid(size, sx, sy, theta):
    # SciPy's bivariate normal density at the offsets (col, row), normalised over the kernel.
    rows, cols = _grid(size)
    ref = stats.multivariate_normal([0, 0], _reference_cov(sx, sy, theta)).pdf(np.stack([cols, rows], -1))
    ref /= ref.sum()
    sx_t, sy_t, th_t = _t(sx, sy, theta)
    k = gaussian_kernels(sx_t, sy_t, th_t, torch.tensor([size]), size)[0].double().numpy()
    assert abs(k.sum() - 1) < 1e-6
    np.testing.assert_allclose(k, ref, atol=2e-7)


def test_kernel_spread_is_the_configured_covariance():
    # Second moments of a kernel wide enough not to be cut: sum k x x^T = Sigma (within 1%).
    sx, sy, theta = 1.5, 0.8, 0.7
    sx_t, sy_t, th_t = _t(sx, sy, theta)
    k = gaussian_kernels(sx_t, sy_t, th_t, torch.tensor([21]), 21)[0].double().numpy()
    rows, cols = _grid(21)
    xy = np.stack([cols, rows], -1).reshape(-1, 2)
    cov = (k.reshape(-1, 1, 1) * xy[:, :, None] * xy[:, None, :]).sum(0)
    np.testing.assert_allclose(cov, _reference_cov(sx, sy, theta), rtol=0.01, atol=0.01)


def test_generalised_and_plateau_kernels_follow_their_formulas():
    # q = x^T Sigma^-1 x by NumPy's inverse; exp(-q^b / 2) and 1 / (1 + q^b), normalised.
    size, sx, sy, theta, beta = 13, 1.7, 0.9, 1.1, 2.5
    rows, cols = _grid(size)
    xy = np.stack([cols, rows], -1)
    q = np.einsum("...i,ij,...j->...", xy, np.linalg.inv(_reference_cov(sx, sy, theta)), xy)
    args = [*_t(sx, sy, theta, beta), torch.tensor([1.0])]
    for name, ref in [("generalized_aniso", np.exp(-0.5 * q ** beta)), ("plateau_aniso", 1 / (1 + q ** beta))]:
        k = mixed_kernels(torch.tensor([KERNEL_TYPES.index(name)]), torch.tensor([size]), *args, size)[0]
        np.testing.assert_allclose(k.double().numpy(), ref / ref.sum(), atol=2e-7, err_msg=name)
    # Isotropic families ignore sigma_y and theta.
    iso = mixed_kernels(torch.tensor([KERNEL_TYPES.index("plateau_iso")]), torch.tensor([size]), *args, size)[0]
    ref = 1 / (1 + ((rows ** 2 + cols ** 2) / sx ** 2) ** beta)
    np.testing.assert_allclose(iso.double().numpy(), ref / ref.sum(), atol=2e-7)


@pytest.mark.parametrize("omega,size", [(math.pi / 3, 21), (2.5, 7), (math.pi, 13)])
def test_sinc_kernel_is_the_circular_lowpass(omega, size):
    # omega J1(omega r) / (2 pi r) with SciPy's Bessel function; omega^2 / (4 pi) at r = 0.
    rows, cols = _grid(size)
    r = np.hypot(rows, cols)
    with np.errstate(invalid="ignore", divide="ignore"):
        ref = np.where(r > 0, omega * special.j1(omega * r) / (2 * np.pi * r), omega ** 2 / (4 * np.pi))
    ref /= ref.sum()
    k = sinc_kernels(torch.tensor([omega]), torch.tensor([size]), 21)[0].double().numpy()
    pad = (21 - size) // 2
    np.testing.assert_allclose(k, np.pad(ref, pad), atol=2e-7)


def test_random_kernels_sum_to_one_and_stay_in_their_ranges():
    s = DegradationSettings.from_config(None)
    n = 3000
    kernels, p = random_mixed_kernels(draws(1), n, s["kernel_prob"], s["kernel_sizes"], s["blur_sigma"],
                                      s["rotation_range"], s["betag_range"], s["betap_range"])
    assert kernels.shape == (n, 21, 21)
    torch.testing.assert_close(kernels.sum(dim=(1, 2)), torch.ones(n), atol=1e-5, rtol=0)
    # Zero outside each kernel's own size.
    half = (p["size"] // 2).view(-1, 1, 1)
    ax = torch.arange(21) - 10
    outside = (ax.view(1, -1, 1).abs() > half) | (ax.view(1, 1, -1).abs() > half)
    assert float(kernels[outside].abs().max()) == 0
    assert set(p["size"].tolist()) == set(s["kernel_sizes"])
    types = [KERNEL_TYPES[t] for t in p["type"].tolist()]
    gauss = torch.tensor([not t == "sinc" for t in types])
    for key in ("sigma_x", "sigma_y"):
        assert 0.2 <= float(p[key][gauss].min()) and float(p[key][gauss].max()) <= 3.0
    iso = torch.tensor([t in ("iso", "generalized_iso", "plateau_iso") for t in types])
    assert torch.equal(p["sigma_x"][iso], p["sigma_y"][iso]) and float(p["theta"][iso].abs().max()) == 0
    gen = torch.tensor([t.startswith("generalized") for t in types])
    plat = torch.tensor([t.startswith("plateau") for t in types])
    assert 0.5 <= float(p["beta"][gen].min()) and float(p["beta"][gen].max()) <= 4.0
    assert 1.0 <= float(p["beta"][plat].min()) and float(p["beta"][plat].max()) <= 2.0
    sinc = torch.tensor([t == "sinc" for t in types])
    small = sinc & (p["size"] < 13)
    assert float(p["omega"][small].min()) >= math.pi / 3 - 1e-6
    assert float(p["omega"][sinc].min()) >= math.pi / 5 - 1e-6 and float(p["omega"][sinc].max()) <= math.pi + 1e-6
    # Family frequencies match the configured probabilities (3000 draws: within 0.03).
    for name, prob in s["kernel_prob"].items():
        assert abs(types.count(name) / n - prob) < 0.03, name


def test_filter2d_is_scipy_correlate_with_mirrored_borders():
    x = textured(2, 9, 12)
    k = torch.rand(2, 7, 7, generator=torch.Generator().manual_seed(3))
    out = filter2d(x, k)
    for i in range(2):
        for c in range(3):
            ref = ndimage.correlate(x[i, c].double().numpy(), k[i].double().numpy(), mode="mirror")
            np.testing.assert_allclose(out[i, c].double().numpy(), ref, atol=1e-5)
    # Pads wider than the image fold back and forth, as NumPy's 'reflect' padding does.
    small = torch.arange(6.0).view(1, 1, 2, 3)
    np.testing.assert_array_equal(mirror_pad(small, 3, 5)[0, 0].numpy(),
                                  np.pad(small[0, 0].numpy(), ((3, 3), (5, 5)), mode="reflect"))
    assert mirror_pad(torch.ones(1, 1, 1, 1), 2, 2).shape == (1, 1, 5, 5)


# --------------------------------------------------------------------------------------
# Noise
# --------------------------------------------------------------------------------------
def test_gaussian_noise_levels_colour_and_grey():
    x = torch.full((4, 3, 128, 128), 0.5)
    sigma = torch.tensor([2.0, 8.0, 8.0, 20.0])
    grey = torch.tensor([False, False, True, True])
    mix = torch.where(grey.view(-1, 1, 1), grey_matrices(sigma), colour_matrices(sigma))
    noise = add_mixed_gaussian(x, mix, draws(2)) - 0.5  # 20/255 * 6 < 0.5: nothing clipped
    std = noise.flatten(1).std(dim=1) * 255
    torch.testing.assert_close(std, sigma, rtol=0.03, atol=0)
    assert torch.equal(noise[2, 0], noise[2, 1]) and torch.equal(noise[3, 0], noise[3, 2])
    corr = np.corrcoef(noise[1].flatten(1).numpy())
    assert np.abs(corr - np.eye(3)).max() < 0.03  # colour noise: channels independent


def test_correlated_noise_has_its_covariance():
    a = torch.tensor([[0.3, 0.1, 0.0], [0.1, 0.2, 0.05], [0.0, 0.05, 0.1]]) * 1e-3
    m = correlated_matrices(a.unsqueeze(0))[0]
    torch.testing.assert_close(m.T @ m, a, atol=1e-9, rtol=1e-4)
    x = torch.full((1, 3, 256, 256), 0.5)
    noise = (add_mixed_gaussian(x, m.unsqueeze(0), draws(4)) - 0.5)[0].flatten(1).double()
    np.testing.assert_allclose(np.cov(noise.numpy()), a.double().numpy(), atol=1e-5)


def test_poisson_noise_variance_follows_the_image():
    # A ramp with all 256 levels: vals = 256, so Var(noise) = scale^2 * img / 256.
    ramp = torch.arange(256.0).div(255).view(1, 1, 1, 256).expand(2, 3, 512, 256).contiguous()
    scale = torch.tensor([1.0, 2.0])
    noise = add_poisson(ramp, scale, torch.tensor([False, False]), draws(5)) - ramp
    mid = slice(96, 160)  # levels 0.38..0.62: far from clipping
    for i in range(2):
        var = noise[i, :, :, mid].var(dim=(0, 1))
        expected = scale[i] ** 2 * ramp[0, 0, 0, mid] / 256
        assert float((var / expected).mean()) == pytest.approx(1.0, abs=0.05)
        assert abs(float(noise[i, :, :, mid].mean())) < 0.002
    grey = add_poisson(ramp[:1], scale[:1], torch.tensor([True]), draws(6)) - ramp[:1]
    assert torch.equal(grey[0, 0, :, mid], grey[0, 1, :, mid])


# --------------------------------------------------------------------------------------
# JPEG
# --------------------------------------------------------------------------------------
def test_quality_tables_are_libjpegs():
    # Pillow reports the tables libjpeg wrote (natural order).
    img = Image.open(REPO / "samples" / "landscape.png").convert("RGB")
    qualities = [1, 5, 30, 50, 51, 75, 95, 100]
    luma, chroma = quality_tables(torch.tensor(qualities, dtype=torch.float32))
    for i, q in enumerate(qualities):
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=q)
        tables = Image.open(buf).quantization
        assert luma[i].flatten().int().tolist() == list(tables[0]), q
        assert chroma[i].flatten().int().tolist() == list(tables[1]), q


JPEG_IMAGES = [("samples/landscape.png", (0, 0, 125, 93)), ("datasets/Set14/HR/baboon.png", (0, 0, 301, 203)),
               ("datasets/Set5/HR/butterfly.png", (3, 0, 254, 203))]


@pytest.mark.parametrize("source,box", JPEG_IMAGES)
def test_jpeg_is_close_to_pillows_libjpeg(shared, source, box):
    """Our JPEG against Pillow's encoder and decoder (4:2:0, its default) on a batch of
    one image at five qualities; sizes that are not multiples of 16 exercise the edge
    padding. Tolerances: libjpeg computes the DCTs in scaled integers, we in float32, so
    a coefficient within rounding of a quantisation boundary can round the other way and
    change its 8x8 block by a step of the table (up to ~35 levels at quality 10, in a few
    blocks); elsewhere pixels agree exactly or by one level. Measured 2026-11-30 on these
    crops: 40-54 dB to Pillow's output, the distortion of the original within 0.04 dB of
    Pillow's, 86-98% of the values within one level."""
    path = REPO / source if source.startswith("samples/") else shared(source)
    img = Image.open(path).convert("RGB").crop(box)
    arr = np.asarray(img)
    qualities = [10, 30, 50, 75, 95]
    x = torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div(255).expand(len(qualities), -1, -1, -1)
    ours = jpeg_compress(x, torch.tensor(qualities, dtype=torch.float32))
    assert ours.shape == x.shape
    ours_u8 = (ours * 255).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(ours_u8, np.round(ours_u8), atol=1e-4)
    ours_u8 = np.round(ours_u8)
    for i, q in enumerate(qualities):
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=q)
        pil = np.asarray(Image.open(buf).convert("RGB"))
        assert psnr(ours_u8[i], pil) > 38, q
        assert abs(psnr(ours_u8[i], arr) - psnr(pil, arr)) < 0.1, q
        assert np.mean(np.abs(ours_u8[i] - pil) <= 1) > 0.8, q


# --------------------------------------------------------------------------------------
# Unsharp masking
# --------------------------------------------------------------------------------------
def test_usm_sharpen_matches_a_scipy_computation():
    # Gaussian of 51 taps with OpenCV's sigma for size 51 (8.0), mirrored borders; then
    # mask, soft mask and blend as Real-ESRGAN's USMSharp defines them.
    img = textured(2, 40, 56, seed=7)
    t = np.arange(51) - 25
    taps = np.exp(-t ** 2 / (2 * 8.0 ** 2))
    taps /= taps.sum()
    kernel = np.outer(taps, taps)
    x = img.double().numpy()
    blur = np.stack([[ndimage.correlate(ch, kernel, mode="mirror") for ch in im] for im in x])
    residual = x - blur
    soft = np.stack([[ndimage.correlate(ch, kernel, mode="mirror") for ch in im]
                     for im in (np.abs(residual) * 255 > 10).astype(np.float64)])
    ref = soft * np.clip(x + 0.5 * residual, 0, 1) + (1 - soft) * x
    out = usm_sharpen(img)
    np.testing.assert_allclose(out.double().numpy(), ref, atol=2e-6)
    torch.testing.assert_close(usm_sharpen(img[0]), out[0])


# --------------------------------------------------------------------------------------
# The pipelines
# --------------------------------------------------------------------------------------
PIPES = ["realesrgan", "bsrgan"]


def run(pipeline: str, hr: torch.Tensor, scales, seed: int = 0, **cfg):
    settings = DegradationSettings.from_config(cfg or None, pipeline=pipeline)
    return degrade(hr, scales, settings, torch.Generator().manual_seed(seed), return_params=True)


@pytest.mark.parametrize("pipeline", PIPES)
def test_output_sizes_follow_each_samples_scale(pipeline):
    hr = textured(6, 48, 64)
    scales = torch.tensor([1.0, 1.7, 2.0, 3.3, 4.0, 6.5])
    lrs, params = run(pipeline, hr, scales)
    for lr, s, p in zip(lrs, scales.tolist(), params):
        assert lr.shape == (3, round(48 / s), round(64 / s))
        assert p["size"] == [round(48 / s), round(64 / s)] and p["scale"] == [s, s]
        assert lr.dtype == torch.float32 and float(lr.min()) >= 0 and float(lr.max()) <= 1
        torch.testing.assert_close(lr * 255, (lr * 255).round(), atol=1e-4, rtol=0)  # 8-bit levels
    # Asymmetric scales (s_h, s_w).
    lrs, _ = run(pipeline, hr[:2], torch.tensor([[2.0, 3.0], [1.0, 4.0]]))
    assert [tuple(lr.shape) for lr in lrs] == [(3, 24, 21), (3, 48, 16)]


@pytest.mark.parametrize("pipeline", PIPES)
def test_same_seed_same_batch(pipeline):
    hr = textured(4, 40, 40, seed=1)
    scales = torch.tensor([1.5, 4.0, 2.0, 1.5])
    for seed in (0, 1, 2):
        a, pa = run(pipeline, hr, scales, seed)
        b, pb = run(pipeline, hr, scales, seed)
        assert all(torch.equal(x, y) for x, y in zip(a, b)) and pa == pb
    c, _ = run(pipeline, hr, scales, 3)
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
    # Without return_params: the same images.
    plain = degrade(hr, scales, DegradationSettings.from_config(None, pipeline), torch.Generator().manual_seed(2))
    assert all(torch.equal(x, y) for x, y in zip(plain, a))


def _steps(params, op, stage=None):
    return [s for p in params for s in p["steps"] if s["op"] == op and (stage is None or s["stage"] == stage)]


def test_realesrgan_draws_stay_in_the_configured_ranges():
    s = DegradationSettings.from_config(None)
    hr = textured(6, 48, 48, seed=2)
    scales = torch.tensor([1.0, 1.5, 2.0, 2.5, 3.0, 4.0])
    params = []
    for seed in range(8):
        lrs, p = run("realesrgan", hr, scales, seed)
        params += p
        # Real-ESRGAN draws these once per batch: the same for every sample.
        for stage in (1, 2):
            assert len({st["factor"] for st in _steps(p, "resize", stage)}) == 1
            assert len({st["type"] for st in _steps(p, "noise", stage)}) == 1
        assert len({st["mode"] for st in _steps(p, "resize", "final")}) == 1
    for stage, sfx in ((1, ""), (2, "2")):
        lo, hi = s[f"resize_range{sfx}"]
        assert all(lo <= st["factor"] <= hi for st in _steps(params, "resize", stage))
        blur = [st for st in _steps(params, "blur", stage) if st["kernel"] != "sinc"]
        assert blur and all(s[f"blur_sigma{sfx}"][0] <= v <= s[f"blur_sigma{sfx}"][1] + 1e-6
                            for st in blur for v in st["sigma"])
        noise = _steps(params, "noise", stage)
        gauss = [st["sigma"] for st in noise if st["type"] == "gaussian"]
        poisson = [st["scale"] for st in noise if st["type"] == "poisson"]
        assert gauss and poisson  # both kinds occur in 8 batches
        assert all(s[f"noise_range{sfx}"][0] <= v <= s[f"noise_range{sfx}"][1] for v in gauss)
        assert all(s[f"poisson_scale_range{sfx}"][0] <= v <= s[f"poisson_scale_range{sfx}"][1] for v in poisson)
        assert {st["grey"] for st in noise} == {True, False}
    q1 = [st["quality"] for st in _steps(params, "jpeg", 1)]
    q2 = [st["quality"] for st in _steps(params, "jpeg", "final")]
    assert len(q1) == len(q2) == 48
    assert all(30 <= q <= 95 for q in q1) and all(5 <= q <= 50 for q in q2)
    sinc = _steps(params, "sinc", "final")
    assert 0 < len(sinc) < 48 and all(math.pi / 3 - 1e-6 <= st["omega"] <= math.pi + 1e-6 for st in sinc)
    assert all(st["kernel_size"] in s["final_sinc_sizes"] for st in sinc)
    # The final step: [resize + sinc] then JPEG, or the reverse; the sinc only where drawn.
    for p in params:
        tail = [st["op"] for st in p["steps"] if st["stage"] == "final"]
        assert [op for op in tail if op != "sinc"] in (["resize", "jpeg"], ["jpeg", "resize"])
        assert "sinc" not in tail or tail[tail.index("resize") + 1] == "sinc"


def test_bsrgan_draws_stay_in_the_configured_ranges():
    hr = textured(6, 64, 64, seed=3)
    scales = torch.tensor([1.0, 2.0, 2.0, 3.0, 4.0, 4.0])
    params = []
    for seed in range(10):
        params += run("bsrgan", hr, scales, seed)[1]
    noise = _steps(params, "noise")
    assert len(noise) == 60 and all(2 <= st["sigma"] <= 25 and st["sigma"] == int(st["sigma"]) for st in noise)
    assert {st["type"] for st in noise} == {"colour", "grey", "correlated"}
    q = [st["quality"] for st in _steps(params, "jpeg")]
    assert all(30 <= v <= 95 and v == int(v) for v in q)
    assert len(_steps(params, "jpeg", "final")) == 60
    assert 0 < len(_steps(params, "jpeg", "shuffled")) < 60  # applied with probability 0.9
    for p in params:
        blur = _steps([p], "blur")
        assert len(blur) == 2
        left = p["scale"][0] / (2 if _steps([p], "resize", "downsample1") else 1)
        for st in blur:
            assert st["kernel_size"] in range(7, 26, 2)
            bound = math.sqrt(4 + left) if st["kernel"] == "aniso" else 2 + 0.2 * left
            assert all(v <= bound + 1e-5 for v in st["sigma"])
        ops = [st.get("stage") for st in p["steps"] if st["op"] == "resize"]
        assert ops.index("downsample2") < ops.index("downsample3")
    halved = _steps(params, "resize", "downsample1")
    assert halved and all(p["scale"][0] >= 2 for p in params if _steps([p], "resize", "downsample1"))


def test_settings_defaults_overrides_and_errors():
    s = DegradationSettings.from_config(None)
    assert s.pipeline == "realesrgan" and s["jpeg_range2"] == (5.0, 50.0) and s["second_blur_prob"] == 0.8
    assert DegradationSettings.from_config(s.as_dict()) == s
    t = DegradationSettings.from_config({"noise_range": [2, 10], "kernel_prob": {"iso": 1.0}})
    assert t["noise_range"] == (2.0, 10.0) and t["kernel_prob"]["sinc"] == 0.0
    b = DegradationSettings.from_config({"pipeline": "bsrgan", "jpeg_prob": 0.5})
    assert b.pipeline == "bsrgan" and b["jpeg_prob"] == 0.5 and b["noise_range"] == (2, 25)
    bad = [
        ({"noise_rnage": [1, 2]}, "'noise_rnage'"),
        ({"noise_range": [30, 1]}, "'noise_range'"),
        ({"jpeg_range": [0, 50]}, "'jpeg_range'"),
        ({"second_blur_prob": 1.5}, "'second_blur_prob'"),
        ({"resize_prob": [0.5, 0.6, 0.1]}, "sum to 1"),
        ({"kernel_prob": {"box": 1.0}}, "'box'"),
        ({"kernel_sizes": [8]}, "odd"),
        ({"resize_modes": ["nearest"]}, "'resize_modes'"),
        ({"aniso_prob": 0.5}, "'aniso_prob'"),  # a BSRGAN name given to Real-ESRGAN
        ("not a mapping", "mapping"),
    ]
    for cfg, words in bad:
        with pytest.raises(CiaosrError, match=words.replace("(", r"\(")):
            DegradationSettings.from_config(cfg)
    with pytest.raises(CiaosrError, match="pipeline"):
        DegradationSettings.from_config({"pipeline": "bsrgan"}, pipeline="realesrgan")
    with pytest.raises(CiaosrError, match="unknown degradation pipeline"):
        DegradationSettings.from_config(None, pipeline="esrgan")


def test_degrade_refuses_bad_input():
    g = torch.Generator().manual_seed(0)
    hr = textured(2, 16, 16)
    for scales in (torch.tensor([0.5, 2.0]), torch.tensor([2.0]), torch.tensor([[2.0, math.inf], [1, 1]])):
        with pytest.raises(CiaosrError, match="scales"):
            degrade(hr, scales, None, g)
    with pytest.raises(CiaosrError, match=r"\(B, 3, H, W\)"):
        degrade(hr[:, :1], torch.tensor([2.0, 2.0]), None, g)
    with pytest.raises(TypeError, match="Generator"):
        degrade(hr, torch.tensor([2.0, 2.0]), None, 0)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("pipeline", PIPES)
def test_cuda_batch_is_seeded_and_sized(pipeline):
    hr = textured(4, 64, 64).cuda()
    scales = torch.tensor([1.0, 2.0, 3.5, 4.0])
    settings = DegradationSettings.from_config(None, pipeline)
    a = degrade(hr, scales, settings, torch.Generator("cuda").manual_seed(0))
    b = degrade(hr, scales, settings, torch.Generator("cuda").manual_seed(0))
    assert all(x.is_cuda and torch.equal(x, y) for x, y in zip(a, b))
    c = degrade(hr, scales, settings, torch.Generator().manual_seed(0))  # a CPU generator works too
    assert [x.shape for x in c] == [x.shape for x in a] and all(x.is_cuda for x in c)

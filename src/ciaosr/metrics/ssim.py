"""SSIM with the super-resolution convention (Wang et al. 2004).

Gaussian window 11 x 11 with sigma 1.5, K1 = 0.01, K2 = 0.03, population (not
sample) covariances, on one channel with data range 255; the SSIM map is averaged
over the pixels whose window lies inside the image. This equals scikit-image's
``structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=255)`` and mmediting's ``ssim``.

For benchmarks the channel is Y in [0, 255] after the protocol's shave: see
``ssim_y``.
"""

from __future__ import annotations

import torch

from .psnr import _batched, liif_y, matlab_y, shave, to_uint8

__all__ = ["gaussian_window", "filter_valid", "ssim", "ssim_y"]

WIN = 11
SIGMA = 1.5
K1, K2 = 0.01, 0.03


def gaussian_window(size: int = WIN, sigma: float = SIGMA, *, dtype=torch.float64, device=None) -> torch.Tensor:
    """Normalised 1-D Gaussian of ``size`` taps centred on the middle one."""
    r = (size - 1) / 2.0
    x = torch.arange(size, dtype=torch.float64) - r
    g = torch.exp(-(x * x) / (2.0 * sigma * sigma))
    return (g / g.sum()).to(dtype=dtype, device=device)


def filter_valid(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable filter of (..., H, W) by the 1-D kernel ``g``, 'valid' region only.

    A weighted sum of shifted slices: float64 throughout, and much faster on CPU than
    a float64 convolution.
    """
    taps = [float(v) for v in g]
    k = len(taps)
    h, w = x.shape[-2:]
    rows = x[..., 0:h - k + 1, :] * taps[0]
    for i in range(1, k):
        rows.add_(x[..., i:h - k + 1 + i, :], alpha=taps[i])
    out = rows[..., :, 0:w - k + 1] * taps[0]
    for i in range(1, k):
        out.add_(rows[..., :, i:w - k + 1 + i], alpha=taps[i])
    return out


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 255.0):
    """Mean SSIM of single-channel images.

    ``x``, ``y``: (H, W), (1, H, W) or (B, 1, H, W) in a range of width
    ``data_range``. Returns a float, or a list of floats for a batch of B > 1
    given as (B, 1, H, W). Both sides need at least 11 pixels.
    """
    single = x.dim() < 4
    if x.dim() == 2:
        x, y = x[None, None], y[None, None]
    elif x.dim() == 3:
        x, y = x[None], y[None]
    if x.shape != y.shape:
        raise ValueError(f"shape mismatch: {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.shape[1] != 1:
        raise ValueError(f"ssim takes one channel, got {x.shape[1]}")
    if x.shape[-2] < WIN or x.shape[-1] < WIN:
        raise ValueError(f"image {tuple(x.shape[-2:])} is smaller than the {WIN}x{WIN} SSIM window")
    x = x.to(torch.float64)
    y = y.to(torch.float64)
    g = gaussian_window(device=x.device)
    c1 = (K1 * data_range) ** 2
    c2 = (K2 * data_range) ** 2
    stacked = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # (B, 5, H, W)
    f = filter_valid(stacked, g).flatten(2)
    mx, my, mxx, myy, mxy = f.unbind(1)
    vx = mxx - mx * mx
    vy = myy - my * my
    cxy = mxy - mx * my
    num = (2 * mx * my + c1) * (2 * cxy + c2)
    den = (mx * mx + my * my + c1) * (vx + vy + c2)
    vals = [float(v) for v in (num / den).mean(dim=1)]
    return vals[0] if single else vals


def ssim_y(sr: torch.Tensor, hr: torch.Tensor, border: int, *, protocol: str = "liif"):
    """Benchmark SSIM: Y in [0, 255] of (3, H, W) / (B, 3, H, W) RGB images, shaved.

    ``protocol='liif'``: float images in [0, 1] as they are, Y = 16 + 255 x LIIF luma.
    ``protocol='mmedit'``: both rounded to uint8 first (uint8 input is used as is),
    Y = MATLAB ``rgb2ycbcr``. Returns a float per image.
    """
    sr, single = _batched(sr)
    hr, _ = _batched(hr)
    if sr.shape != hr.shape:
        raise ValueError(f"shape mismatch: sr {tuple(sr.shape)} vs hr {tuple(hr.shape)}")
    if protocol == "liif":
        ys = 16.0 + 255.0 * liif_y(sr.to(torch.float64))
        yh = 16.0 + 255.0 * liif_y(hr.to(torch.float64))
    elif protocol == "mmedit":
        sr8 = sr if sr.dtype == torch.uint8 else to_uint8(sr)
        hr8 = hr if hr.dtype == torch.uint8 else to_uint8(hr)
        ys = matlab_y(sr8.to(torch.float64) / 255.0)
        yh = matlab_y(hr8.to(torch.float64) / 255.0)
    else:
        raise ValueError(f"unknown protocol {protocol!r}")
    vals = ssim(shave(ys, border), shave(yh, border), data_range=255.0)
    return vals[0] if single else vals

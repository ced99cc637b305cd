"""Unsharp masking of the training target, as Real-ESRGAN and the released CiaoSR do it.

With ``I`` the image and ``B`` its Gaussian blur (a ``k x k`` kernel, ``k = radius``
made odd, sigma from the size by OpenCV's rule for ``sigma = 0``:
``0.3 ((k - 1) / 2 - 1) + 0.8``, i.e. 8.0 for the default 51):

* the sharpened image ``K = clip(I + weight (I - B), 0, 1)``;
* a mask that is 1 where ``|I - B| * 255 > threshold``, blurred with the same kernel;
* the result ``mask K + (1 - mask) I``: sharpened on edges, untouched in flat areas.

The blur is separable (two 1-D passes), borders mirrored as OpenCV's default.
"""

from __future__ import annotations

import torch

from .filtering import separable_filter


def gaussian_taps(size: int, sigma: float = 0.0) -> torch.Tensor:
    """OpenCV's ``getGaussianKernel(size, sigma)``: normalised 1-D Gaussian taps; a
    ``sigma`` of 0 or less is taken from the size."""
    if sigma <= 0:
        sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    taps = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    return (taps / taps.sum()).float()


def usm_sharpen(img: torch.Tensor, weight: float = 0.5, radius: int = 50, threshold: float = 10) -> torch.Tensor:
    """Unsharp-mask a batch (B, C, H, W) (or one image (C, H, W)) in [0, 1]."""
    single = img.dim() == 3
    x = img.unsqueeze(0) if single else img
    if x.dim() != 4:
        raise ValueError(f"usm_sharpen takes (B, C, H, W) or (C, H, W), got {tuple(img.shape)}")
    size = int(radius) + (1 - int(radius) % 2)
    taps = gaussian_taps(size)
    residual = x - separable_filter(x, taps)
    mask = (residual.abs() * 255 > threshold).to(x.dtype)
    soft = separable_filter(mask, taps)
    sharp = (x + weight * residual).clamp(0, 1)
    out = soft * sharp + (1 - soft) * x
    return out[0] if single else out

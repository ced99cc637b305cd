"""PSNR as the super-resolution papers compute it, under the two benchmark protocols.

LIIF protocol (LIIF, LTE, SRNO, CLIT and most follow-ups):
    images in [0, 1], the output *not* rounded to 8 bits; the difference ``sr - hr`` is
    taken to luma with ``(65.738 R + 129.057 G + 25.064 B) / 256`` (the +16 offset of
    Y cancels) and ``shave = s`` pixels are dropped at every border; on DIV2K all RGB
    channels are used with ``shave = s + 6``. ``PSNR = -10 log10(mean(diff^2))``.

mmediting protocol (the official CiaoSR code):
    both images rounded to uint8 first; Y = ``16 + 65.481 R + 128.553 G + 24.966 B``
    on [0, 1] RGB (MATLAB ``rgb2ycbcr``), in [0, 255] and not rounded; ``crop = s``
    pixels dropped at every border; ``PSNR = 20 log10(255 / sqrt(mse))``.

Every function takes (3, H, W) or (B, 3, H, W) tensors and returns one float per image
(a float for a single image, a list for a batch). Sums are done in float64.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "LIIF_Y_COEFFS", "MATLAB_Y_COEFFS", "MATLAB_GRAY_COEFFS", "liif_y", "matlab_y", "matlab_gray", "to_uint8",
    "shave",
    "psnr_from_mse", "psnr_liif", "psnr_mmedit",
]

# Luma weights applied to [0, 1] RGB.
LIIF_Y_COEFFS = (65.738 / 256, 129.057 / 256, 25.064 / 256)  # result in [0, 1] units, no offset
MATLAB_Y_COEFFS = (65.481, 128.553, 24.966)  # result in [0, 255] units, plus 16
# MATLAB ``rgb2gray``: the first row of the inverse of the NTSC (YIQ) matrix, in [0, 1] units.
MATLAB_GRAY_COEFFS = (0.298936021293775, 0.587043074451121, 0.114020904255103)


def _batched(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    if x.dim() == 3:
        return x.unsqueeze(0), True
    if x.dim() == 4:
        return x, False
    raise ValueError(f"expected an image (3, H, W) or batch (B, 3, H, W), got shape {tuple(x.shape)}")


def _weighted_sum(x: torch.Tensor, coeffs) -> torch.Tensor:
    if x.shape[1] != 3:
        raise ValueError(f"expected 3 (RGB) channels, got {x.shape[1]}")
    w = torch.tensor(coeffs, dtype=torch.float64, device=x.device).view(1, 3, 1, 1)
    return (x.to(torch.float64) * w).sum(dim=1, keepdim=True)


def liif_y(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> (B, 1, H, W) luma without offset, LIIF weights, float64."""
    return _weighted_sum(x, LIIF_Y_COEFFS)


def matlab_y(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> (B, 1, H, W) Y of MATLAB ``rgb2ycbcr`` in [16, 235], float64."""
    return _weighted_sum(x, MATLAB_Y_COEFFS) + 16.0


def matlab_gray(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> (B, 1, H, W) MATLAB ``rgb2gray`` in [0, 1], float64."""
    return _weighted_sum(x, MATLAB_GRAY_COEFFS)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] float -> uint8 as mmediting's ``tensor2img``: clamp, x255, round."""
    return (x.clamp(0, 1) * 255.0).round().to(torch.uint8)


def shave(x: torch.Tensor, border: int) -> torch.Tensor:
    """Drop ``border`` pixels at each edge of the last two axes (0: unchanged)."""
    border = int(border)
    if border < 0:
        raise ValueError(f"border must be >= 0, got {border}")
    if border == 0:
        return x
    if x.shape[-2] <= 2 * border or x.shape[-1] <= 2 * border:
        raise ValueError(f"image {tuple(x.shape[-2:])} is too small to shave {border} pixels per side")
    return x[..., border:-border, border:-border]


def psnr_from_mse(mse: float, peak: float = 1.0) -> float:
    if mse == 0:
        return math.inf
    return 10.0 * math.log10(peak * peak / mse)


def _per_image_mse(diff: torch.Tensor) -> list[float]:
    return [float(v) for v in diff.pow(2).flatten(1).mean(dim=1)]


def _check_pair(sr: torch.Tensor, hr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, bool]:
    sr, single = _batched(sr)
    hr, _ = _batched(hr)
    if sr.shape != hr.shape:
        raise ValueError(f"shape mismatch: sr {tuple(sr.shape)} vs hr {tuple(hr.shape)}")
    return sr, hr, single


def psnr_liif(sr: torch.Tensor, hr: torch.Tensor, scale: float, *, rgb: bool = False,
              border: int | None = None):
    """LIIF protocol PSNR of float images in [0, 1].

    ``rgb=False`` (Set5, Set14, B100, Urban100, Manga109): Y of the difference, shave
    ``ceil(scale)``. ``rgb=True`` (DIV2K validation): all channels, shave
    ``ceil(scale) + 6``. ``border`` overrides the shave.
    """
    sr, hr, single = _check_pair(sr, hr)
    if border is None:
        border = math.ceil(scale) + (6 if rgb else 0)
    diff = sr.to(torch.float64) - hr.to(torch.float64)
    if not rgb:
        diff = liif_y(diff)
    diff = shave(diff, border)
    out = [psnr_from_mse(m) for m in _per_image_mse(diff)]
    return out[0] if single else out


def psnr_mmedit(sr: torch.Tensor, hr: torch.Tensor, scale: int, *, border: int | None = None):
    """mmediting protocol PSNR: Y of the uint8-rounded images, crop ``scale``, peak 255.

    ``sr`` and ``hr`` are uint8 images, or floats in [0, 1] (rounded here first).
    """
    sr, hr, single = _check_pair(sr, hr)
    if border is None:
        border = int(math.ceil(scale))
    sr8 = sr if sr.dtype == torch.uint8 else to_uint8(sr)
    hr8 = hr if hr.dtype == torch.uint8 else to_uint8(hr)
    y_sr = matlab_y(sr8.to(torch.float64) / 255.0)
    y_hr = matlab_y(hr8.to(torch.float64) / 255.0)
    diff = shave(y_sr - y_hr, border)
    out = [psnr_from_mse(m, peak=255.0) for m in _per_image_mse(diff)]
    return out[0] if single else out

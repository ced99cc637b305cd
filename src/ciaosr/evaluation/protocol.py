"""The two benchmark protocols: how a set is read, how the model runs, how it is scored.

``liif`` (default; LIIF, LTE, SRNO, CLIT and most follow-ups):
    EDSR-pack LR for x2-x4, on-the-fly PIL bicubic LR above; whole-image inference;
    float output in [0, 1]; PSNR on the Y of the difference with shave s (DIV2K: RGB,
    shave s + 6).
``mmedit`` (the official CiaoSR code):
    GTmod12 HR, MATLAB-bicubic LR for x2-x4; 192-LR-pixel tiles with 32 overlap for
    s <= 4; output rounded to uint8; Y = MATLAB rgb2ycbcr; crop s; peak 255.

SSIM is always on Y in [0, 255] after the same shave (see ``ciaosr.metrics.ssim``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..metrics.psnr import psnr_liif, psnr_mmedit
from ..metrics.ssim import ssim_y
from ..data.sets.catalog import is_rgb_dataset

PROTOCOLS = ("liif", "mmedit")
METRICS = ("psnr", "ssim")

# mmediting test settings of the official CiaoSR configs.
MMEDIT_TILE = 192
MMEDIT_TILE_OVERLAP = 32
MMEDIT_TILE_MAX_SCALE = 4


@dataclass(frozen=True)
class Protocol:
    name: str

    def __post_init__(self):
        if self.name not in PROTOCOLS:
            raise ValueError(f"unknown protocol {self.name!r}")

    def uses_tiles(self, scale: float) -> bool:
        return self.name == "mmedit" and scale <= MMEDIT_TILE_MAX_SCALE

    def border(self, scale: float, dataset: str) -> int:
        """Pixels dropped at each border before PSNR and SSIM."""
        b = math.ceil(scale)
        if self.name == "liif" and is_rgb_dataset(dataset):
            b += 6
        return b

    def finalize(self, sr: torch.Tensor) -> torch.Tensor:
        """Model output (3, H, W) in [0, 1] -> what the metric sees."""
        sr = sr.clamp(0, 1)
        if self.name == "mmedit":
            sr = (sr * 255.0).round() / 255.0
        return sr

    def score(self, sr: torch.Tensor, hr_u8: torch.Tensor, scale: float, dataset: str,
              metrics=METRICS) -> dict[str, float]:
        """Per-image metrics of one (3, H, W) output against its uint8 HR."""
        if sr.shape != hr_u8.shape:
            raise ValueError(f"output {tuple(sr.shape)} does not match HR {tuple(hr_u8.shape)}")
        border = self.border(scale, dataset)
        sr = sr.detach().to("cpu", torch.float64)
        out: dict[str, float] = {}
        if self.name == "liif":
            hr = hr_u8.to(torch.float64) / 255.0
            if "psnr" in metrics:
                out["psnr"] = psnr_liif(sr, hr, scale, rgb=is_rgb_dataset(dataset), border=border)
            if "ssim" in metrics:
                out["ssim"] = ssim_y(sr, hr, border, protocol="liif")
        else:
            if "psnr" in metrics:
                out["psnr"] = psnr_mmedit(sr, hr_u8, scale, border=border)
            if "ssim" in metrics:
                out["ssim"] = ssim_y(sr, hr_u8, border, protocol="mmedit")
        return out

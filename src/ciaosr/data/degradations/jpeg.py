"""JPEG compression of a batch, in torch, one quality per sample.

What a baseline JPEG encoder and decoder (libjpeg, as used by Pillow and OpenCV) do to
an 8-bit RGB image, computed on any device without leaving torch:

1. RGB to JFIF YCbCr in libjpeg's 16-bit fixed point, giving whole levels;
2. the edges replicated to a multiple of 16 pixels (one 4:2:0 MCU);
3. Cb and Cr subsampled 2x2 (4:2:0) by averaging, rounded as libjpeg rounds
   (alternating biases 1 and 2 before dividing by 4);
4. per 8x8 block, less 128: the orthonormal 2-D DCT-II, divided by the quantisation
   table and rounded half away from zero;
5. decoding: times the table, inverse DCT, plus 128, rounded and clipped to 0..255;
6. Cb and Cr brought back to full size by libjpeg's "fancy" upsampling (3/4 of the
   nearest sample and 1/4 of the next, per axis, edges repeated: bilinear x2 with
   half-pixel centres), rounded with libjpeg's biases;
7. JFIF YCbCr to RGB in libjpeg's fixed point, clipped.

The tables are the standard ones of ITU-T T.81 Annex K, scaled by quality as libjpeg's
``jpeg_set_quality`` scales them (``5000 / q`` below 50, ``200 - 2 q`` from 50, entries
rounded and kept in 1..255). A quality need not be a whole number (Real-ESRGAN draws
them from a continuous range); the same formulas apply.

libjpeg computes the DCTs in scaled integer arithmetic (Pillow's default, ``islow``),
this module in float32, so a coefficient that lies within rounding of a quantisation
step boundary may round the other way; outputs match Pillow's closely but not bit for
bit (tests/test_degradations.py measures how closely).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

LUMA_TABLE = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
CHROMA_TABLE = (
    (17, 18, 24, 47, 99, 99, 99, 99),
    (18, 21, 26, 66, 99, 99, 99, 99),
    (24, 26, 56, 99, 99, 99, 99, 99),
    (47, 66, 99, 99, 99, 99, 99, 99),
) + ((99,) * 8,) * 4

# JFIF YCbCr (ITU-R BT.601, full range) in libjpeg's 16-bit fixed point: each
# coefficient round(c * 2^16), sums shifted right by 16 with libjpeg's rounding offsets.
_ONE = 1 << 16
_RGB_TO_YCC = ((19595, 38470, 7471), (-11059, -21709, 32768), (32768, -27439, -5329))  # 0.299 0.587 ...
_YCC_OFFSET = (_ONE // 2, (128 << 16) + _ONE // 2 - 1, (128 << 16) + _ONE // 2 - 1)
_CR_R, _CB_B, _CB_G, _CR_G = 91881, 116130, -22554, -46802  # 1.402, 1.772, -0.34414, -0.71414


def quality_tables(quality: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Luma and chroma quantisation tables (n, 8, 8) for per-sample qualities (n,)."""
    q = quality.float().clamp(1, 100)
    scale = torch.where(q < 50, torch.floor(5000.0 / q), torch.floor(200.0 - 2.0 * q)).view(-1, 1, 1)

    def scaled(table) -> torch.Tensor:
        base = torch.tensor(table, dtype=torch.float32, device=quality.device)
        return torch.floor((base * scale + 50.0) / 100.0).clamp(1, 255)

    return scaled(LUMA_TABLE), scaled(CHROMA_TABLE)


@lru_cache(maxsize=8)
def _dct_matrix(device: torch.device) -> torch.Tensor:
    u = torch.arange(8, dtype=torch.float64).view(8, 1)
    x = torch.arange(8, dtype=torch.float64).view(1, 8)
    d = torch.cos((2 * x + 1) * u * math.pi / 16) * 0.5
    d[0] = math.sqrt(1 / 8)
    return d.float().to(device)


def _round_half_away(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.floor(x.abs() + 0.5)


def _code_blocks(plane: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Quantise and reconstruct (n, k, H, W) level-shifted samples (H, W multiples of 8)
    block by block with the per-sample ``table`` (n, 8, 8)."""
    n, k, h, w = plane.shape
    d = _dct_matrix(plane.device)
    blocks = plane.view(n, k, h // 8, 8, w // 8, 8).transpose(3, 4)
    coef = d @ blocks @ d.T
    t = table.view(n, 1, 1, 1, 8, 8)
    rec = d.T @ (_round_half_away(coef / t) * t) @ d
    return rec.transpose(3, 4).reshape(n, k, h, w)


def _shift(acc: torch.Tensor) -> torch.Tensor:
    return torch.div(acc, _ONE, rounding_mode="floor")


def _rgb_to_ycc(rgb: torch.Tensor) -> torch.Tensor:
    """(n, 3, H, W) whole RGB levels -> whole YCbCr levels, as libjpeg converts."""
    c = rgb.long()
    planes = [_shift(sum(w * c[:, d] for d, w in enumerate(row)) + off) for row, off in zip(_RGB_TO_YCC, _YCC_OFFSET)]
    return torch.stack(planes, dim=1).float()


def _ycc_to_rgb(ycc: torch.Tensor) -> torch.Tensor:
    """(n, 3, H, W) whole YCbCr levels -> RGB levels in 0..255, as libjpeg converts."""
    y, cb, cr = ycc.long().unbind(1)
    cb, cr = cb - 128, cr - 128
    half = _ONE // 2
    rgb = torch.stack([y + _shift(_CR_R * cr + half), y + _shift(_CB_G * cb + _CR_G * cr + half),
                       y + _shift(_CB_B * cb + half)], dim=1)
    return rgb.clamp(0, 255).float()


def _subsample(c: torch.Tensor) -> torch.Tensor:
    """2x2 averages as libjpeg takes them: (sum + bias) // 4, bias 1, 2, 1, 2, ... along a row."""
    sums = F.avg_pool2d(c, 2) * 4
    bias = 1.0 + (torch.arange(sums.shape[-1], device=c.device) % 2).to(c.dtype)
    return torch.floor((sums + bias) / 4)


def jpeg_compress(x: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """JPEG-compress and decode (n, 3, H, W) RGB in [0, 1] at per-sample ``quality``
    (n,), 4:2:0; returns (n, 3, H, W) on 8-bit levels in [0, 1]."""
    n, c, h, w = x.shape
    if c != 3:
        raise ValueError(f"JPEG compression takes RGB (n, 3, H, W), got {tuple(x.shape)}")
    quality = torch.as_tensor(quality, device=x.device).reshape(-1).expand(n)
    luma_t, chroma_t = quality_tables(quality)
    rgb = (x.float().clamp(0, 1) * 255).round()
    ycc = _rgb_to_ycc(rgb)
    hp, wp = -(-h // 16) * 16, -(-w // 16) * 16
    ycc = F.pad(ycc, (0, wp - w, 0, hp - h), mode="replicate")
    y = (_code_blocks(ycc[:, :1] - 128, luma_t) + 128).round().clamp(0, 255)[..., :h, :w]
    chroma = _code_blocks(_subsample(ycc[:, 1:]) - 128, chroma_t) + 128
    chroma = chroma.round().clamp(0, 255)[..., :(h + 1) // 2, :(w + 1) // 2]
    chroma = F.interpolate(chroma, scale_factor=2, mode="bilinear", align_corners=False)
    # libjpeg adds 8/16 to the even output column's sum and 7/16 to the odd one's.
    bias = 0.5 - (torch.arange(chroma.shape[-1], device=x.device) % 2).to(chroma.dtype) / 16
    chroma = torch.floor(chroma + bias)[..., :h, :w]
    return _ycc_to_rgb(torch.cat([y, chroma], dim=1)) / 255

"""The in-memory image of ``ciaosr upscale``, and its conversions from Pillow and to integers.

An image is held as an :class:`ImageData`: float32 colour in [0, 1] with one channel
(grey) or three (RGB), and the alpha channel, if any, kept apart (the model only ever
sees colour; see ``ciaosr.inference.upscale`` for how alpha is upscaled).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from .metadata import NO_META, ImageMeta


@dataclass
class ImageData:
    """Colour ``pixels`` (H, W, 1 or 3), float32 in [0, 1]; ``alpha`` (H, W) or None.

    ``bit_depth`` is the precision of the source (8, or 16 for 16-bit and float data).
    ``meta``: the ICC profile, EXIF and DPI carried to the output (see ``metadata``).
    """

    pixels: np.ndarray
    alpha: np.ndarray | None = None
    bit_depth: int = 8
    meta: ImageMeta = NO_META

    @property
    def grey(self) -> bool:
        return self.pixels.shape[2] == 1

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as PIL reports sizes."""
        return self.width, self.height


def _u8(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.uint8).astype(np.float32) / 255.0


def pil_to_data(img: Image.Image) -> ImageData:
    """Any Pillow image -> ImageData (no orientation applied). Palette, CMYK, YCbCr and
    other colour modes become RGB; modes with transparency keep it as alpha."""
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        grey = np.asarray(img).astype(np.float32) / 65535.0
        return ImageData(grey[..., None], None, 16)
    if mode == "I":  # 32-bit integers; Pillow's mode for 16-bit grey PNG in older versions
        grey = np.clip(np.asarray(img, dtype=np.int64), 0, 65535).astype(np.float32) / 65535.0
        return ImageData(grey[..., None], None, 16)
    if mode == "F":
        grey = np.nan_to_num(np.asarray(img, dtype=np.float32), nan=0.0)
        return ImageData(np.clip(grey, 0, 1)[..., None], None, 16)
    if mode in ("1", "L"):
        return ImageData(_u8(img.convert("L"))[..., None], None, 8)
    if mode in ("LA", "La"):
        arr = _u8(img.convert("LA"))
        return ImageData(arr[..., :1].copy(), arr[..., 1].copy(), 8)
    has_alpha = mode in ("RGBA", "RGBa", "PA") or (mode == "P" and "transparency" in img.info)
    if has_alpha:
        arr = _u8(img.convert("RGBA"))
        return ImageData(arr[..., :3].copy(), arr[..., 3].copy(), 8)
    return ImageData(_u8(img.convert("RGB")), None, 8)


def split_channels(arr: np.ndarray, bit_depth: int) -> ImageData:
    """(H, W, C) float with C = 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA -> ImageData."""
    c = arr.shape[-1]
    if c in (2, 4):
        return ImageData(np.ascontiguousarray(arr[..., :c - 1]), np.ascontiguousarray(arr[..., c - 1]), bit_depth)
    return ImageData(np.ascontiguousarray(arr), None, bit_depth)


def stack_channels(data: ImageData) -> np.ndarray:
    """(H, W, C) float with alpha last, C = 1..4."""
    if data.alpha is None:
        return data.pixels
    return np.concatenate([data.pixels, data.alpha[..., None]], axis=-1)


def quantise(x: np.ndarray, bit_depth: int) -> np.ndarray:
    top = 255 if bit_depth == 8 else 65535
    out = np.clip(x, 0.0, 1.0) * top
    np.rint(out, out=out)
    return out.astype(np.uint8 if bit_depth == 8 else np.uint16)


__all__ = ["ImageData", "pil_to_data", "split_channels", "stack_channels", "quantise"]

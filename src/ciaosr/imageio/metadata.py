"""EXIF orientation: images stored sideways or mirrored are turned upright on reading."""

from __future__ import annotations

import numpy as np
from PIL import Image

from .image import ImageData

EXIF_ORIENTATION = 0x0112


def exif_orientation(img: Image.Image) -> int:
    """The EXIF orientation (1..8) of an open Pillow image; 1 when absent or malformed."""
    try:
        return int(img.getexif().get(EXIF_ORIENTATION, 1))
    except Exception:  # malformed EXIF: keep the stored orientation
        return 1


def apply_orientation(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Turn an (H, W, ...) array stored with EXIF ``orientation`` (1..8) upright."""
    if orientation == 2:
        return arr[:, ::-1]
    if orientation == 3:
        return arr[::-1, ::-1]
    if orientation == 4:
        return arr[::-1]
    if orientation == 5:
        return arr.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(arr, -1)
    if orientation == 7:
        return np.rot90(arr, 2).swapaxes(0, 1)
    if orientation == 8:
        return np.rot90(arr, 1)
    return arr


def orient(data: ImageData, orientation: int) -> ImageData:
    """``data`` turned upright (the same object when ``orientation`` asks for nothing)."""
    if orientation in (None, 1) or orientation not in range(2, 9):
        return data
    pixels = np.ascontiguousarray(apply_orientation(data.pixels, orientation))
    alpha = None if data.alpha is None else np.ascontiguousarray(apply_orientation(data.alpha, orientation))
    return ImageData(pixels, alpha, data.bit_depth)


__all__ = ["EXIF_ORIENTATION", "exif_orientation", "apply_orientation", "orient"]

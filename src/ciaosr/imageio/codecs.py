"""16-bit PNG and TIFF, which Pillow keeps only at 8 bits (it reads 16-bit colour PNG as
8-bit and writes no 16-bit colour at all): through ``imagecodecs`` (libpng) and
``tifffile``. Bytes and files <-> (H, W, C) uint16 arrays; no Pillow."""

from __future__ import annotations

import io
import os

import imagecodecs
import numpy as np
import tifffile


def decode_png16(blob: bytes) -> np.ndarray | None:
    """A PNG -> (H, W, C) uint16 if it is 16-bit (any filter, interlaced or not), else
    None. Raises ``ValueError`` for a corrupt file."""
    try:
        arr = imagecodecs.png_decode(blob)
    except Exception as exc:  # imagecodecs.PngError and friends
        raise ValueError(str(exc) or type(exc).__name__) from None
    if arr.dtype != np.uint16:
        return None
    return arr[..., None] if arr.ndim == 2 else arr


def encode_png16(arr: np.ndarray, level: int = 6) -> bytes:
    """(H, W, C) uint16, C = 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA) -> PNG bytes."""
    return bytes(imagecodecs.png_encode(np.ascontiguousarray(arr[..., 0] if arr.shape[-1] == 1 else arr),
                                        level=level))


def encode_tiff16(arr: np.ndarray) -> bytes:
    """(H, W, C) uint16 -> TIFF bytes; C = 2 or 4 means the last sample is unassociated alpha."""
    c = arr.shape[-1]
    buf = io.BytesIO()
    tifffile.imwrite(buf, arr[..., 0] if c == 1 else arr, photometric="minisblack" if c <= 2 else "rgb",
                     planarconfig="contig", extrasamples=("unassalpha",) if c in (2, 4) else None)
    return buf.getvalue()


def read_tiff16(path: str | os.PathLike) -> tuple[np.ndarray, int] | None:
    """(array (H, W, C) uint16, EXIF orientation) of a 16-bit TIFF's first page, or None
    when it is not 16-bit grey or colour with or without alpha. Raises ``ValueError``
    for a file tifffile cannot read."""
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            orientation = int(getattr(page, "orientation", 1) or 1)
            arr = np.asarray(page.asarray())
    except Exception as exc:  # tifffile raises many kinds on odd files
        raise ValueError(str(exc) or type(exc).__name__) from None
    if arr.ndim == 2:
        arr = arr[..., None]
    elif arr.ndim == 3 and arr.shape[0] in (2, 3, 4) and arr.shape[-1] not in (2, 3, 4):
        arr = np.moveaxis(arr, 0, -1)  # planar configuration
    if arr.dtype != np.uint16 or arr.ndim != 3 or arr.shape[-1] not in (1, 2, 3, 4):
        return None
    return arr, orientation


__all__ = ["decode_png16", "encode_png16", "encode_tiff16", "read_tiff16"]

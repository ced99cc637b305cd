"""16-bit PNG and TIFF, which Pillow keeps only at 8 bits (it reads 16-bit colour PNG as
8-bit and writes no 16-bit colour at all): through ``imagecodecs`` (libpng) and
``tifffile``. Bytes and files <-> (H, W, C) uint16 arrays; no Pillow.

Metadata. PNG: the ICC profile (``iCCP``), resolution (``pHYs``) and EXIF (``eXIf``)
chunks are written after the header (libpng's encoder here takes none). TIFF: the ICC
profile and resolution, which is what tifffile writes; no EXIF (tifffile writes no
Exif sub-IFD).
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from typing import NamedTuple

import numpy as np

# imagecodecs and tifffile are imported where they are used, so that the package (and a
# GPU machine whose image lacks them) runs without them until a 16-bit file comes along.


def decode_png16(blob: bytes) -> np.ndarray | None:
    """A PNG -> (H, W, C) uint16 if it is 16-bit (any filter, interlaced or not), else
    None. Raises ``ValueError`` for a corrupt file."""
    import imagecodecs

    try:
        arr = imagecodecs.png_decode(blob)
    except Exception as exc:  # imagecodecs.PngError and friends
        raise ValueError(str(exc) or type(exc).__name__) from None
    if arr.dtype != np.uint16:
        return None
    return arr[..., None] if arr.ndim == 2 else arr


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_meta_chunks(icc_profile: bytes | None = None, exif: bytes | None = None,
                    dpi: tuple[float, float] | None = None) -> bytes:
    """``iCCP``, ``pHYs`` (pixels per metre) and ``eXIf`` chunks for what is given."""
    out = b""
    if icc_profile:
        out += png_chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(icc_profile))
    if dpi:
        ppm = [int(d / 0.0254 + 0.5) for d in dpi]
        if all(0 < p < 2 ** 31 for p in ppm):
            out += png_chunk(b"pHYs", struct.pack(">IIB", ppm[0], ppm[1], 1))
    if exif:
        out += png_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\0\0") else exif)
    return out


def encode_png16(arr: np.ndarray, level: int = 6, *, icc_profile: bytes | None = None, exif: bytes | None = None,
                 dpi: tuple[float, float] | None = None) -> bytes:
    """(H, W, C) uint16, C = 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA) -> PNG bytes,
    with the metadata given (an EXIF block as Pillow's, with or without its ``Exif`` header)."""
    import imagecodecs

    blob = bytes(imagecodecs.png_encode(np.ascontiguousarray(arr[..., 0] if arr.shape[-1] == 1 else arr),
                                        level=level))
    extra = png_meta_chunks(icc_profile, exif, dpi)
    if not extra:
        return blob
    header_end = 8 + 12 + struct.unpack(">I", blob[8:12])[0]  # signature, then the IHDR chunk
    return blob[:header_end] + extra + blob[header_end:]


def encode_tiff16(arr: np.ndarray, *, icc_profile: bytes | None = None,
                  dpi: tuple[float, float] | None = None) -> bytes:
    """(H, W, C) uint16 -> TIFF bytes; C = 2 or 4 means the last sample is unassociated
    alpha. With an ICC profile and a resolution (dots per inch) when given."""
    c = arr.shape[-1]
    buf = io.BytesIO()
    import tifffile

    tifffile.imwrite(buf, arr[..., 0] if c == 1 else arr, photometric="minisblack" if c <= 2 else "rgb",
                     planarconfig="contig", extrasamples=("unassalpha",) if c in (2, 4) else None,
                     metadata=None, iccprofile=icc_profile or None,
                     resolution=tuple(dpi) if dpi else None, resolutionunit="INCH" if dpi else None)
    return buf.getvalue()


class Tiff16(NamedTuple):
    array: np.ndarray  # (H, W, C) uint16 of the first page
    orientation: int  # EXIF orientation, 1..8
    pages: int
    icc_profile: bytes | None
    dpi: tuple[float, float] | None


def _tiff_dpi(page) -> tuple[float, float] | None:
    try:
        x, y = (float(v) for v in page.resolution)
        unit = int(page.resolutionunit)
    except Exception:  # absent, or an older tifffile
        return None
    per_inch = {2: 1.0, 3: 2.54}.get(unit)
    return (x * per_inch, y * per_inch) if per_inch and x > 0 and y > 0 else None


class TooManyPixels(ValueError):
    """An image whose header gives more pixels than the reader was allowed to decode."""

    def __init__(self, width: int, height: int):
        super().__init__(f"{width}x{height}")
        self.width, self.height = width, height


def read_tiff16(path: str | os.PathLike, max_pixels: int | None = None) -> Tiff16 | None:
    """The first page of a 16-bit TIFF, with the page count, EXIF orientation, ICC
    profile and resolution, or None when it is not 16-bit grey or colour with or
    without alpha. Raises ``ValueError`` for a file tifffile cannot read, and
    :class:`TooManyPixels` before decoding a page of more than ``max_pixels``."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            height, width = int(page.imagelength), int(page.imagewidth)
            if max_pixels is not None and width * height > max_pixels:
                raise TooManyPixels(width, height)
            pages = len(tif.pages)
            orientation = int(getattr(page, "orientation", 1) or 1)
            icc = page.tags.get(34675)
            icc = bytes(icc.value) if icc is not None else None
            dpi = _tiff_dpi(page)
            arr = np.asarray(page.asarray())
    except TooManyPixels:
        raise
    except Exception as exc:  # tifffile raises many kinds on odd files
        raise ValueError(str(exc) or type(exc).__name__) from None
    if arr.ndim == 2:
        arr = arr[..., None]
    elif arr.ndim == 3 and arr.shape[0] in (2, 3, 4) and arr.shape[-1] not in (2, 3, 4):
        arr = np.moveaxis(arr, 0, -1)  # planar configuration
    if arr.dtype != np.uint16 or arr.ndim != 3 or arr.shape[-1] not in (1, 2, 3, 4):
        return None
    return Tiff16(arr, orientation, pages, icc, dpi)


__all__ = ["decode_png16", "encode_png16", "encode_tiff16", "read_tiff16", "Tiff16", "TooManyPixels", "png_chunk", "png_meta_chunks"]

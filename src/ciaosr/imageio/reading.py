"""Reading image files into :class:`ImageData`.

Reading uses Pillow (PNG, JPEG, WebP, TIFF, BMP, PPM and whatever else it opens),
forces a full decode so that truncated files fail here, and applies the EXIF
orientation. 16-bit data is kept at full precision: 16-bit grey through Pillow, 16-bit
colour PNGs (which Pillow reduces to 8 bits) through ``ciaosr.imageio.codecs``, and
16-bit colour TIFFs through ``tifffile`` when it is installed (otherwise at 8 bits,
with a warning).
"""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import CiaosrError
from .codecs import decode_png16
from .image import ImageData, pil_to_data, split_channels
from .metadata import exif_orientation, orient


def _rawmode(img: Image.Image) -> str:
    """The decoder's raw mode of the first tile ('' when unknown); must be read before
    ``load()``, which clears the tile list."""
    try:
        args = img.tile[0].args if hasattr(img.tile[0], "args") else img.tile[0][3]
    except (IndexError, AttributeError, TypeError):
        return ""
    if isinstance(args, tuple):
        args = args[0] if args else ""
    return args if isinstance(args, str) else ""


def read_image(path: str | os.PathLike) -> ImageData:
    """Read an image file fully; every failure is a one-line :class:`CiaosrError`."""
    path = Path(path)
    if not path.exists():
        raise CiaosrError(f"{path}: no such file")
    if path.is_dir():
        raise CiaosrError(f"{path}: is a folder, not an image")
    try:
        img = Image.open(path)
    except UnidentifiedImageError:
        # Pillow opens no grey+alpha 16-bit TIFF (which we write); tifffile may.
        data = _read_tiff16(path, quiet=True) if path.suffix.lower() in (".tif", ".tiff") else None
        if data is not None:
            return data
        raise CiaosrError(f"{path}: not an image (unrecognised or unsupported format)") from None
    except Image.DecompressionBombError as exc:
        raise CiaosrError(f"{path}: image too large to open safely ({exc})") from None
    except OSError as exc:
        raise CiaosrError(f"{path}: cannot open ({exc.strerror or exc})") from None
    with img:
        fmt = img.format
        rawmode = _rawmode(img)
        try:
            img.load()  # the full decode: a truncated or corrupt file fails here
        except Image.DecompressionBombError as exc:
            raise CiaosrError(f"{path}: image too large to open safely ({exc})") from None
        except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error) as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CiaosrError(f"{path}: truncated or corrupt image ({detail})") from None
        orientation = exif_orientation(img)
        data = None
        sixteen_colour = ";16" in rawmode and img.mode in ("RGB", "RGBA", "LA")
        if sixteen_colour and fmt == "PNG":
            data = _read_png16(path)
        elif sixteen_colour and fmt == "TIFF":
            data = _read_tiff16(path)
        if data is None:
            data = pil_to_data(img)
    return orient(data, orientation)


def _read_tiff16(path: Path, quiet: bool = False) -> ImageData | None:
    """A 16-bit TIFF through ``tifffile`` (None if it is not installed or the file is
    not 16-bit grey/colour with or without alpha). No orientation applied."""
    try:
        import tifffile
    except ImportError:
        if not quiet:
            warnings.warn(f"{path}: 16-bit colour TIFF read at 8-bit precision "
                          f"(install 'tifffile' for full precision)", stacklevel=3)
        return None
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            orientation = int(getattr(page, "orientation", 1) or 1)
            arr = np.asarray(page.asarray())
    except Exception as exc:  # tifffile raises many kinds on odd files
        if quiet:
            return None
        raise CiaosrError(f"{path}: cannot read TIFF ({exc})") from None
    if arr.ndim == 2:
        arr = arr[..., None]
    elif arr.ndim == 3 and arr.shape[0] in (2, 3, 4) and arr.shape[-1] not in (2, 3, 4):
        arr = np.moveaxis(arr, 0, -1)  # planar configuration
    if arr.dtype != np.uint16 or arr.ndim != 3 or arr.shape[-1] not in (1, 2, 3, 4):
        return None
    data = split_channels(arr.astype(np.float32) / 65535.0, 16)
    return orient(data, orientation) if quiet else data


def _read_png16(path: Path) -> ImageData | None:
    try:
        arr = decode_png16(path.read_bytes())
    except (ValueError, zlib.error, struct.error) as exc:
        raise CiaosrError(f"{path}: truncated or corrupt image ({exc})") from None
    if arr is None:  # interlaced: Pillow's 8-bit decode is used instead
        return None
    return split_channels(arr.astype(np.float32) / 65535.0, 16)


__all__ = ["read_image"]

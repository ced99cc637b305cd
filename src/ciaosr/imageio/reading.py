"""Reading image files into :class:`ImageData`.

Reading uses Pillow (PNG, JPEG, WebP, TIFF, BMP, PPM and whatever else it opens),
forces a full decode so that truncated files fail here, and applies the EXIF
orientation. 16-bit data is kept at full precision: 16-bit grey through Pillow, 16-bit
colour PNG and TIFF (which Pillow reduces to 8 bits) through ``ciaosr.imageio.codecs``.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import CiaosrError
from .codecs import decode_png16, read_tiff16
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
        if path.suffix.lower() in (".tif", ".tiff"):
            try:
                found = read_tiff16(path)
            except ValueError:
                found = None
            if found is not None:
                return orient(_sixteen(found[0]), found[1])
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


def _sixteen(arr: np.ndarray) -> ImageData:
    return split_channels(arr.astype(np.float32) / 65535.0, 16)


def _read_tiff16(path: Path) -> ImageData | None:
    """No orientation applied (Pillow's EXIF reading gives it)."""
    try:
        found = read_tiff16(path)
    except ValueError as exc:
        raise CiaosrError(f"{path}: cannot read TIFF ({exc})") from None
    return None if found is None else _sixteen(found[0])


def _read_png16(path: Path) -> ImageData | None:
    try:
        arr = decode_png16(path.read_bytes())
    except ValueError as exc:
        raise CiaosrError(f"{path}: truncated or corrupt image ({exc})") from None
    return None if arr is None else _sixteen(arr)


__all__ = ["read_image"]

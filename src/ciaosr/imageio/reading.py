"""Reading image files into :class:`ImageData`.

Reading uses Pillow (PNG, JPEG, WebP, TIFF, BMP, GIF, PPM and whatever else it opens),
forces a full decode so that truncated files fail here, applies the EXIF orientation and
keeps the metadata carried to the output (``ciaosr.imageio.metadata``). 16-bit data is
kept at full precision: 16-bit grey through Pillow, 16-bit colour PNG and TIFF (which
Pillow reduces to 8 bits) through ``ciaosr.imageio.codecs``.

Only single-frame images are read: an animated GIF, PNG or WebP, or a multi-page TIFF,
is refused rather than cut to its first frame. A JPEG with a Multi-Picture extension
(MPO: cameras store previews or a second view after the picture) is read as the picture
it shows, its first.
"""

from __future__ import annotations

import dataclasses
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import CiaosrError, require_file
from .codecs import Tiff16, TooManyPixels, decode_png16, read_tiff16
from .image import ImageData, pil_to_data, split_channels
from .metadata import ImageMeta, exif_orientation, orient, quiet_exif_warnings, read_meta


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


def read_image(path: str | os.PathLike, *, name: str | None = None, max_pixels: int | None = None) -> ImageData:
    """Read an image file fully; every failure is a one-line :class:`CiaosrError`.

    ``name``: what errors call the file (default: its path; e.g. ``<stdin>`` for a
    file that holds a stream, or an upload's name). ``max_pixels``: refuse an image of
    more pixels, from its header, before decoding it (Pillow's own decompression-bomb
    check, at twice ``PIL.Image.MAX_IMAGE_PIXELS``, applies in any case)."""
    path = Path(path)
    try:
        return _read(path, max_pixels)
    except CiaosrError as exc:
        if name is None:
            raise
        raise CiaosrError(str(exc).replace(str(path), name)) from None


def _too_many_pixels(path: Path, width: int, height: int, max_pixels: int) -> CiaosrError:
    return CiaosrError(f"{path}: image of {width}x{height} has {width * height:,} pixels, over the limit of "
                       f"{max_pixels:,}")


def _read(path: Path, max_pixels: int | None) -> ImageData:
    require_file(path, "an image")
    try:
        with quiet_exif_warnings():
            img = Image.open(path)
    except UnidentifiedImageError:
        # Pillow opens no grey+alpha 16-bit TIFF (which we write); tifffile may.
        if path.suffix.lower() in (".tif", ".tiff"):
            try:
                found = read_tiff16(path, max_pixels)
            except TooManyPixels as exc:
                raise _too_many_pixels(path, exc.width, exc.height, max_pixels) from None
            except ValueError:
                found = None
            if found is not None:
                _single_frame(path, found.pages)
                data = _sixteen(found)
                meta = ImageMeta(icc_profile=found.icc_profile, dpi=found.dpi).matching(data.grey)
                return orient(dataclasses.replace(data, meta=meta), found.orientation)
        raise CiaosrError(f"{path}: not an image (unrecognised or unsupported format)") from None
    except Image.DecompressionBombError as exc:
        raise CiaosrError(f"{path}: image too large to open safely ({exc})") from None
    except OSError as exc:
        raise CiaosrError(f"{path}: cannot open ({exc.strerror or exc})") from None
    if max_pixels is not None and img.width * img.height > max_pixels:
        img.close()
        raise _too_many_pixels(path, img.width, img.height, max_pixels)
    with img:
        fmt = img.format
        if fmt != "MPO":
            _single_frame(path, _frames(path, img))
        rawmode = _rawmode(img)
        try:
            img.load()  # the full decode: a truncated or corrupt file fails here
        except Image.DecompressionBombError as exc:
            raise CiaosrError(f"{path}: image too large to open safely ({exc})") from None
        except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error) as exc:
            raise CiaosrError(f"{path}: truncated or corrupt image ({_first_line(exc)})") from None
        data = None
        sixteen_colour = ";16" in rawmode and img.mode in ("RGB", "RGBA", "LA")
        if sixteen_colour and fmt == "PNG":
            data = _read_png16(path)
        elif sixteen_colour and fmt == "TIFF":
            data = _read_tiff16(path)
        if data is None:
            data = pil_to_data(img)
        return from_pil(img, data)


def image_size(path: str | os.PathLike, upright: bool = False) -> tuple[int, int]:
    """(height, width) from the file header, without decoding the pixels; ``upright``:
    as :func:`read_image` gives it, with the EXIF orientation applied (90-degree turns
    swap the sides). A file Pillow cannot open is a one-line :class:`CiaosrError`."""
    try:
        with quiet_exif_warnings(), Image.open(path) as im:
            w, h = im.size
            if upright and exif_orientation(im) in (5, 6, 7, 8):
                w, h = h, w
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise CiaosrError(f"cannot read image {path}: {exc}") from None
    return h, w


def from_pil(img: Image.Image, data: ImageData | None = None) -> ImageData:
    """An open Pillow image as :class:`ImageData`, upright (its EXIF orientation
    applied) and with its metadata; ``data``: its pixels when read otherwise (16 bits)."""
    data = pil_to_data(img) if data is None else data
    data = dataclasses.replace(data, meta=read_meta(img, data.grey))
    return orient(data, exif_orientation(img))


def _frames(path: Path, img: Image.Image) -> int:
    """How many frames or pages Pillow finds; a chain of frames that cannot be followed
    is an error (reading the first frame alone could cut an animation silently)."""
    try:
        return int(getattr(img, "n_frames", 1))
    except Exception as exc:  # Pillow raises many kinds on a damaged frame chain
        raise CiaosrError(f"{path}: truncated or corrupt image (cannot count its frames: {_first_line(exc)})") from None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _single_frame(path: Path, frames: int) -> None:
    if frames > 1:
        raise CiaosrError(f"{path}: has {frames} frames (animated or multi-page); "
                          f"only single-frame images are supported")


def _sixteen(found: Tiff16 | np.ndarray) -> ImageData:
    arr = found.array if isinstance(found, Tiff16) else found
    return split_channels(arr.astype(np.float32) / 65535.0, 16)


def _read_tiff16(path: Path) -> ImageData | None:
    """No orientation or metadata (Pillow's reading of the same file gives them)."""
    try:
        found = read_tiff16(path)
    except ValueError as exc:
        raise CiaosrError(f"{path}: cannot read TIFF ({exc})") from None
    return None if found is None else _sixteen(found)


def _read_png16(path: Path) -> ImageData | None:
    try:
        arr = decode_png16(path.read_bytes())
    except ValueError as exc:
        raise CiaosrError(f"{path}: truncated or corrupt image ({exc})") from None
    return None if arr is None else _sixteen(arr)


__all__ = ["read_image", "from_pil"]

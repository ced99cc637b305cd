"""Writing :class:`ImageData` to image files.

8-bit by default; 16-bit for PNG and TIFF (``bit_depth=16``), with the encoders of
``ciaosr.imageio.codecs`` since Pillow cannot write 16-bit colour. Every write is
atomic (``ciaosr.atomic``): a reader never sees a half-written output, and an existing
file is never replaced unless ``overwrite=True``.

The image's metadata (``ImageData.meta``) goes where the format has room for it:

========  ============  =====  ====
format    ICC profile   EXIF   DPI
========  ============  =====  ====
PNG       yes           yes    yes
JPEG      yes           yes    yes
WebP      yes           yes    no (no such field)
TIFF      yes           8-bit  yes
BMP       no            no     yes
========  ============  =====  ====

16-bit TIFF is written by tifffile, which writes no EXIF. EXIF larger than a JPEG
segment (64 KiB) is left out of JPEG files, and a grey ICC profile out of WebP files
(which store grey as colour).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from ..atomic import write_atomic
from ..errors import CiaosrError
from .codecs import encode_png16, encode_tiff16
from .image import ImageData, quantise, stack_channels

#: Output formats by extension.
WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP",
                 ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP"}
SIXTEEN_BIT_FORMATS = ("PNG", "TIFF")
#: Which metadata (Pillow's ``info`` keys) each format stores; 16-bit TIFF: no EXIF.
META_KEYS = {"PNG": ("icc_profile", "exif", "dpi"), "JPEG": ("icc_profile", "exif", "dpi"),
             "WEBP": ("icc_profile", "exif"), "TIFF": ("icc_profile", "exif", "dpi"), "BMP": ("dpi",)}
JPEG_MAX_EXIF = 65533  # one APP1 segment, less its length field


def output_format(path: str | os.PathLike, bit_depth: int = 8) -> str:
    """The Pillow format name for an output path; errors for what cannot be written."""
    path = Path(path)
    fmt = WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(WRITE_FORMATS))
        raise CiaosrError(f"{path}: unknown output format '{path.suffix}' (use one of {known})")
    if bit_depth not in (8, 16):
        raise CiaosrError(f"bit depth must be 8 or 16, got {bit_depth}")
    if bit_depth == 16 and fmt not in SIXTEEN_BIT_FORMATS:
        raise CiaosrError(f"{path}: 16-bit output needs PNG or TIFF, not {fmt}")
    return fmt


def meta_options(data: ImageData, fmt: str, bit_depth: int = 8) -> dict:
    """The metadata of ``data`` that ``fmt`` can store, as Pillow save options
    (``icc_profile``, ``exif``, ``dpi``)."""
    info = data.meta.pil_info(data.width, data.height)
    keys = ("icc_profile", "dpi") if (fmt, bit_depth) == ("TIFF", 16) else META_KEYS.get(fmt, ())
    if fmt == "WEBP" and data.grey:  # WebP stores colour only: a grey profile would misdescribe it
        keys = tuple(k for k in keys if k != "icc_profile")
    options = {k: info[k] for k in keys if k in info}
    if fmt == "JPEG" and len(options.get("exif", b"")) > JPEG_MAX_EXIF:
        del options["exif"]
    return options


#: zlib level of PNG outputs unless asked otherwise: 3 wrote 4096 x 4096 upscaled photos
#: 2.1-2.5x faster than level 6 (Pillow's default) for files 11-15% larger, level 1
#: 3.1-3.6x faster for 20-25% larger (benchmarks/png_levels.py, docs/performance.md).
PNG_LEVEL = 3


def encode_image(data: ImageData, fmt: str, bit_depth: int = 8, png_level: int = PNG_LEVEL) -> bytes | Image.Image:
    """The bytes (16-bit) or the Pillow image (8-bit) to write for ``data``."""
    if fmt == "JPEG" and data.alpha is not None:
        raise CiaosrError("JPEG cannot store transparency: write PNG, WebP or TIFF instead")
    arr = quantise(stack_channels(data), bit_depth)
    if bit_depth == 16:
        meta = meta_options(data, fmt, 16)
        return encode_png16(arr, png_level, **meta) if fmt == "PNG" else encode_tiff16(arr, **meta)
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[arr.shape[-1]]
    if mode == "LA" and fmt in ("BMP", "WEBP"):  # no grey+alpha there: store as RGBA
        arr = np.concatenate([np.repeat(arr[..., :1], 3, axis=-1), arr[..., 1:]], axis=-1)
        mode = "RGBA"
    return Image.fromarray(arr[..., 0] if mode == "L" else arr)  # uint8: L, LA, RGB or RGBA by shape


def write_image(path: str | os.PathLike, data: ImageData, bit_depth: int = 8, overwrite: bool = False,
                quality: int | None = None, png_level: int | None = None) -> Path:
    """Write atomically: a temporary file in the same folder, then moved into place.
    Without ``overwrite`` an existing ``path`` is never replaced (even one that appears
    while this runs). ``quality`` (1-100, default 95) is for JPEG and WebP, ``png_level``
    (zlib level 0-9, default :data:`PNG_LEVEL`) for PNG."""
    path = Path(path)
    fmt = output_format(path, bit_depth)
    if path.exists() and not overwrite:
        raise CiaosrError(f"{path}: already exists (use --overwrite to replace it)")
    level = PNG_LEVEL if png_level is None else png_level
    payload = encode_image(data, fmt, bit_depth, level)

    def write(tmp: str) -> None:
        if isinstance(payload, bytes):
            Path(tmp).write_bytes(payload)
        else:
            q = 95 if quality is None else quality
            options = {"JPEG": {"quality": q, "subsampling": 0}, "WEBP": {"quality": q},
                       "PNG": {"compress_level": level}}.get(fmt, {})
            payload.save(tmp, format=fmt, **options, **meta_options(data, fmt))

    return write_atomic(path, write, overwrite)


def write_tensor_png(path: str | os.PathLike, img, overwrite: bool = True) -> Path:
    """A (3, H, W) RGB tensor, uint8 or float in [0, 1] (clamped, rounded), as an 8-bit
    PNG through :func:`write_image`: the prepared test sets' images and ``ciaosr eval
    --save-images``' outputs. Replaces ``path`` unless ``overwrite`` is False; a uint8
    tensor's pixels are written exactly."""
    img = img.detach().cpu()
    arr = img.float().permute(1, 2, 0).numpy()
    if not img.is_floating_point():
        arr = arr / np.float32(255.0)
    return write_image(path, ImageData(np.ascontiguousarray(arr)), 8, overwrite=overwrite)


__all__ = ["PNG_LEVEL", "WRITE_FORMATS", "SIXTEEN_BIT_FORMATS", "META_KEYS", "output_format", "meta_options", "encode_image",
           "write_image", "write_tensor_png"]

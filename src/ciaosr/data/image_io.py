"""Reading and writing images for ``ciaosr upscale``.

An image is held as an :class:`ImageData`: float32 colour in [0, 1] with one channel
(grey) or three (RGB), and the alpha channel, if any, kept apart (the model only ever
sees colour; see ``ciaosr.inference.upscale`` for how alpha is upscaled).

Reading uses Pillow (PNG, JPEG, WebP, TIFF, BMP and whatever else it opens), forces a
full decode so that truncated files fail here, and applies the EXIF orientation.
16-bit data is kept at full precision: 16-bit grey through Pillow, 16-bit colour PNGs
(which Pillow reduces to 8 bits) through a small PNG decoder of our own, and 16-bit
colour TIFFs through ``tifffile`` when it is installed (otherwise at 8 bits, with a
warning).

Writing is 8-bit by default; 16-bit for PNG and TIFF (``bit_depth=16``), with encoders
of our own since Pillow cannot write 16-bit colour. Every write goes to a temporary
file in the destination folder that is then moved into place, so a reader never sees
a half-written output; an existing file is never replaced unless ``overwrite=True``.
"""

from __future__ import annotations

import os
import struct
import tempfile
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..atomic import write_atomic
from ..errors import CiaosrError

#: Extensions picked up when a folder is given as input.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")

#: Output formats by extension.
WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP",
                 ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP"}
SIXTEEN_BIT_FORMATS = ("PNG", "TIFF")

_EXIF_ORIENTATION = 0x0112


@dataclass
class ImageData:
    """Colour ``pixels`` (H, W, 1 or 3), float32 in [0, 1]; ``alpha`` (H, W) or None.

    ``bit_depth`` is the precision of the source (8, or 16 for 16-bit and float data).
    """

    pixels: np.ndarray
    alpha: np.ndarray | None = None
    bit_depth: int = 8

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


# --------------------------------------------------------------------------------------
# Pillow images <-> ImageData
# --------------------------------------------------------------------------------------
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


def _orient(data: ImageData, orientation: int) -> ImageData:
    if orientation in (None, 1) or orientation not in range(2, 9):
        return data
    pixels = np.ascontiguousarray(apply_orientation(data.pixels, orientation))
    alpha = None if data.alpha is None else np.ascontiguousarray(apply_orientation(data.alpha, orientation))
    return ImageData(pixels, alpha, data.bit_depth)


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------
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
        try:
            orientation = int(img.getexif().get(_EXIF_ORIENTATION, 1))
        except Exception:  # malformed EXIF: keep the stored orientation
            orientation = 1
        data = None
        sixteen_colour = ";16" in rawmode and img.mode in ("RGB", "RGBA", "LA")
        if sixteen_colour and fmt == "PNG":
            data = _read_png16(path)
        elif sixteen_colour and fmt == "TIFF":
            data = _read_tiff16(path)
        if data is None:
            data = pil_to_data(img)
    return _orient(data, orientation)


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
    data = _split_channels(arr.astype(np.float32) / 65535.0, 16)
    return _orient(data, orientation) if quiet else data


def _split_channels(arr: np.ndarray, bit_depth: int) -> ImageData:
    """(H, W, C) float with C = 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA -> ImageData."""
    c = arr.shape[-1]
    if c in (2, 4):
        return ImageData(np.ascontiguousarray(arr[..., :c - 1]), np.ascontiguousarray(arr[..., c - 1]), bit_depth)
    return ImageData(np.ascontiguousarray(arr), None, bit_depth)


# --- a small PNG codec for 16-bit colour, which Pillow reduces to 8 bits --------------
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type -> samples per pixel


def _png_chunks(blob: bytes):
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(blob):
        length, kind = struct.unpack(">I4s", blob[pos:pos + 8])
        data = blob[pos + 8:pos + 8 + length]
        if len(data) < length:
            raise ValueError("chunk runs past the end of the file")
        yield kind, data
        pos += 12 + length
        if kind == b"IEND":
            return
    raise ValueError("no IEND chunk")


def _unfilter_slow(kind: int, row: bytes, prev: bytes, bpp: int) -> bytearray:
    """PNG Average (3) and Paeth (4) filters, which depend on the byte just decoded."""
    out = bytearray(row)
    for i in range(len(out)):
        a = out[i - bpp] if i >= bpp else 0
        b = prev[i]
        if kind == 3:
            out[i] = (out[i] + ((a + b) >> 1)) & 0xFF
        else:
            c = prev[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = a if (pa <= pb and pa <= pc) else (b if pb <= pc else c)
            out[i] = (out[i] + pred) & 0xFF
    return out


def decode_png16(blob: bytes) -> np.ndarray | None:
    """A 16-bit, non-interlaced PNG -> (H, W, C) uint16; None for other PNGs."""
    if not blob.startswith(_PNG_SIGNATURE):
        raise ValueError("not a PNG file")
    header, idat = None, []
    for kind, data in _png_chunks(blob):
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", data[:13])
        elif kind == b"IDAT":
            idat.append(data)
    if header is None:
        raise ValueError("no IHDR chunk")
    width, height, depth, colour, _, _, interlace = header
    if depth != 16 or colour not in _PNG_CHANNELS or interlace != 0:
        return None
    channels = _PNG_CHANNELS[colour]
    bpp = 2 * channels
    stride = width * bpp
    raw = zlib.decompress(b"".join(idat))
    if len(raw) < height * (stride + 1):
        raise ValueError("image data is shorter than the image")
    rows = np.frombuffer(raw, dtype=np.uint8, count=height * (stride + 1)).reshape(height, stride + 1)
    out = np.empty((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        kind, row = int(rows[y, 0]), rows[y, 1:]
        if kind == 0:
            cur = row
        elif kind == 1:  # Sub: a running sum along each byte lane, modulo 256
            cur = np.cumsum(row.reshape(width, bpp), axis=0, dtype=np.uint8).reshape(stride)
        elif kind == 2:  # Up
            cur = row + prev
        elif kind in (3, 4):
            cur = np.frombuffer(_unfilter_slow(kind, row.tobytes(), prev.tobytes(), bpp), dtype=np.uint8)
        else:
            raise ValueError(f"unknown PNG filter type {kind}")
        out[y] = cur
        prev = out[y]
    return out.view(">u2").reshape(height, width, channels).astype(np.uint16)


def _read_png16(path: Path) -> ImageData | None:
    try:
        arr = decode_png16(path.read_bytes())
    except (ValueError, zlib.error, struct.error) as exc:
        raise CiaosrError(f"{path}: truncated or corrupt image ({exc})") from None
    if arr is None:  # interlaced: Pillow's 8-bit decode is used instead
        return None
    return _split_channels(arr.astype(np.float32) / 65535.0, 16)


def encode_png16(arr: np.ndarray, level: int = 6) -> bytes:
    """(H, W, C) uint16, C = 1, 2, 3 or 4 -> 16-bit PNG bytes (Up filter on every row)."""
    h, w, c = arr.shape
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    rows = np.ascontiguousarray(arr.astype(">u2")).view(np.uint8).reshape(h, w * c * 2)
    filtered = np.empty((h, w * c * 2 + 1), dtype=np.uint8)
    filtered[:, 0] = 2
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])  # uint8 arithmetic wraps mod 256

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, colour, 0, 0, 0)
    return (_PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(filtered.tobytes(), level))
            + chunk(b"IEND", b""))


def encode_tiff16(arr: np.ndarray) -> bytes:
    """(H, W, C) uint16 -> an uncompressed little-endian baseline TIFF in one strip.
    C = 2 or 4 means the last sample is unassociated alpha."""
    h, w, c = arr.shape
    data = np.ascontiguousarray(arr.astype("<u2")).tobytes()
    has_alpha = c in (2, 4)
    n_tags = 11 + has_alpha
    ifd_end = 8 + 2 + 12 * n_tags + 4
    # Layout: header | IFD | BitsPerSample array | SampleFormat array | pixels. Arrays of
    # more than two SHORTs do not fit in a tag and live after the IFD.
    arrays = 2 * c > 4
    bits_at = ifd_end
    format_at = bits_at + (2 * c if arrays else 0)
    pixels_at = format_at + (2 * c if arrays else 0)

    def short_tag(code, values, offset):
        if len(values) <= 2:
            inline = struct.pack("<" + "H" * len(values), *values).ljust(4, b"\0")
            return struct.pack("<HHI", code, 3, len(values)) + inline
        return struct.pack("<HHII", code, 3, len(values), offset)

    def long_tag(code, value):
        return struct.pack("<HHII", code, 4, 1, value)

    tags = [
        long_tag(256, w), long_tag(257, h),
        short_tag(258, [16] * c, bits_at),  # BitsPerSample
        short_tag(259, [1], 0),  # no compression
        short_tag(262, [1 if c <= 2 else 2], 0),  # min-is-black grey, or RGB
        long_tag(273, pixels_at), short_tag(277, [c], 0), long_tag(278, h),
        long_tag(279, len(data)), short_tag(284, [1], 0),  # chunky samples
    ]
    if has_alpha:
        tags.append(short_tag(338, [2], 0))  # ExtraSamples: unassociated alpha
    tags.append(short_tag(339, [1] * c, format_at))  # SampleFormat: unsigned
    assert len(tags) == n_tags
    out = [b"II*\0", struct.pack("<I", 8), struct.pack("<H", n_tags), *tags, struct.pack("<I", 0)]
    if arrays:
        out += [struct.pack("<" + "H" * c, *([16] * c)), struct.pack("<" + "H" * c, *([1] * c))]
    out.append(data)
    return b"".join(out)


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------
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


def quantise(x: np.ndarray, bit_depth: int) -> np.ndarray:
    top = 255 if bit_depth == 8 else 65535
    out = np.clip(x, 0.0, 1.0) * top
    np.rint(out, out=out)
    return out.astype(np.uint8 if bit_depth == 8 else np.uint16)


def _stack(data: ImageData) -> np.ndarray:
    """(H, W, C) float with alpha last, C = 1..4."""
    if data.alpha is None:
        return data.pixels
    return np.concatenate([data.pixels, data.alpha[..., None]], axis=-1)


def encode_image(data: ImageData, fmt: str, bit_depth: int = 8) -> bytes | Image.Image:
    """The bytes (16-bit) or the Pillow image (8-bit) to write for ``data``."""
    if fmt == "JPEG" and data.alpha is not None:
        raise CiaosrError("JPEG cannot store transparency: write PNG, WebP or TIFF instead")
    arr = quantise(_stack(data), bit_depth)
    if bit_depth == 16:
        return encode_png16(arr) if fmt == "PNG" else encode_tiff16(arr)
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[arr.shape[-1]]
    if mode == "LA" and fmt in ("BMP", "WEBP"):  # no grey+alpha there: store as RGBA
        arr = np.concatenate([np.repeat(arr[..., :1], 3, axis=-1), arr[..., 1:]], axis=-1)
        mode = "RGBA"
    return Image.fromarray(arr[..., 0] if mode == "L" else arr)  # uint8: L, LA, RGB or RGBA by shape


def check_writable_folder(folder: str | os.PathLike) -> None:
    """Raise unless a file can really be created in ``folder`` (tried, not guessed:
    permission bits say nothing for root, or on read-only mounts)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CiaosrError(f"{folder}: output folder does not exist or is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".ciaosr-probe-", dir=folder)
    except OSError as exc:
        raise CiaosrError(f"{folder}: output folder is not writable ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)


def write_image(path: str | os.PathLike, data: ImageData, bit_depth: int = 8, overwrite: bool = False) -> Path:
    """Write atomically: a temporary file in the same folder, then moved into place.
    Without ``overwrite`` an existing ``path`` is never replaced (even one that appears
    while this runs)."""
    path = Path(path)
    fmt = output_format(path, bit_depth)
    if path.exists() and not overwrite:
        raise CiaosrError(f"{path}: already exists (use --overwrite to replace it)")
    payload = encode_image(data, fmt, bit_depth)

    def write(tmp: str) -> None:
        if isinstance(payload, bytes):
            Path(tmp).write_bytes(payload)
        else:
            options = {"JPEG": {"quality": 95, "subsampling": 0}, "WEBP": {"quality": 95},
                       "PNG": {"compress_level": 6}}.get(fmt, {})
            payload.save(tmp, format=fmt, **options)

    return write_atomic(path, write, overwrite)


__all__ = ["ImageData", "IMAGE_EXTENSIONS", "WRITE_FORMATS", "read_image", "write_image", "pil_to_data",
           "apply_orientation", "check_writable_folder", "output_format", "quantise", "encode_image",
           "decode_png16", "encode_png16", "encode_tiff16"]

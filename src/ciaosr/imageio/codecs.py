"""16-bit PNG and TIFF codecs, for the colour images Pillow keeps only at 8 bits.

Pillow reads 16-bit colour PNGs as 8-bit and cannot write 16-bit colour at all, so
16-bit PNGs are decoded and encoded here (non-interlaced; every filter type on
reading, the Up filter on writing), and 16-bit TIFFs written as uncompressed
little-endian baseline TIFF in one strip. (``tifffile``, when installed, reads 16-bit
colour TIFF; it is not used for writing, so that the files written do not depend on
what happens to be installed.) Pure bytes <-> arrays: no files, no Pillow.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

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


__all__ = ["decode_png16", "encode_png16", "encode_tiff16"]

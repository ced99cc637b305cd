"""Image metadata: EXIF orientation (applied on reading), and the ICC profile, EXIF and
DPI carried from an input to its output (:class:`ImageMeta`).

What is carried. The ICC profile, when its colour space is the image's (an RGB profile
on colour, a grey one on grey; a CMYK profile on a CMYK file converted to RGB is
dropped, since it would misdescribe the output). EXIF: the primary-image tags the Exif
standard defines for IFD 0 (camera, date, author, copyright, description, resolution)
with the Exif and GPS sub-IFDs, the orientation set to 1 (the pixels are turned upright
on reading) and the pixel dimensions set to the output's on writing; a TIFF's own
layout tags (strips, compression, bits per sample...) are not EXIF and are left out.
The resolution in dots per inch (across and down swapped when a quarter turn makes the
image upright). XMP, IPTC and the EXIF thumbnail are not carried.
Unreadable metadata is dropped, never an error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image

EXIF_ORIENTATION = 0x0112
EXIF_IFD, GPS_IFD, INTEROP_IFD = 0x8769, 0x8825, 0xA005
PIXEL_X_DIMENSION, PIXEL_Y_DIMENSION = 0xA002, 0xA003

#: IFD 0 tags kept: those the Exif standard lists for the primary image's IFD 0,
#: less the ones describing how the stored pixels are encoded (YCbCr*), plus Windows'
#: rating and XP* title/comment/author/keywords/subject tags.
EXIF_IFD0_TAGS = frozenset({
    0x010E, 0x010F, 0x0110, 0x0112, 0x011A, 0x011B, 0x0128, 0x0131, 0x0132, 0x013B, 0x013E, 0x013F,
    0x8298, EXIF_IFD, GPS_IFD, 0x4746, 0x4749, 0x9C9B, 0x9C9C, 0x9C9D, 0x9C9E, 0x9C9F})


@contextlib.contextmanager
def quiet_exif_warnings():
    """Without Pillow's warnings about malformed EXIF (on opening a JPEG too), which is
    ignored or dropped here, not reported."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="(?i).*exif", category=UserWarning)
        yield


def exif_orientation(img: Image.Image) -> int:
    """The EXIF orientation (1..8) of an open Pillow image; 1 when absent or malformed."""
    try:
        with quiet_exif_warnings():
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


def orient(data, orientation: int):
    """An ``ImageData`` turned upright (the same object when ``orientation`` asks for
    nothing); a quarter turn also swaps its horizontal and vertical DPI."""
    if orientation in (None, 1) or orientation not in range(2, 9):
        return data
    pixels = np.ascontiguousarray(apply_orientation(data.pixels, orientation))
    alpha = None if data.alpha is None else np.ascontiguousarray(apply_orientation(data.alpha, orientation))
    meta = data.meta
    if orientation >= 5 and meta.dpi is not None:
        meta = dataclasses.replace(meta, dpi=meta.dpi[::-1])
    return dataclasses.replace(data, pixels=pixels, alpha=alpha, meta=meta)


# --------------------------------------------------------------------------------------
# Carried metadata
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageMeta:
    """``icc_profile``: the ICC profile's bytes; ``exif``: an EXIF block (``Exif\\0\\0``
    and a TIFF structure, as Pillow's ``exif=`` takes it) with orientation 1; ``dpi``:
    (horizontal, vertical) dots per inch. Each None when absent."""

    icc_profile: bytes | None = None
    exif: bytes | None = None
    dpi: tuple[float, float] | None = None

    def exif_for(self, width: int, height: int) -> bytes | None:
        """The EXIF block for an output of ``width`` x ``height`` pixels (the Exif
        IFD's pixel dimensions, where present, say so)."""
        if self.exif is None:
            return None
        try:
            exif = Image.Exif()
            exif.load(self.exif)
            sub = exif.get_ifd(EXIF_IFD)
            if PIXEL_X_DIMENSION in sub or PIXEL_Y_DIMENSION in sub:
                sub[PIXEL_X_DIMENSION], sub[PIXEL_Y_DIMENSION] = int(width), int(height)
            return exif.tobytes()
        except Exception:  # cannot be rewritten: write it as read
            return self.exif

    def matching(self, grey: bool) -> "ImageMeta":
        """Without an ICC profile of another colour space than the pixels' (grey or RGB)."""
        if self.icc_profile is None or icc_colour_space(self.icc_profile) == ("GRAY" if grey else "RGB"):
            return self
        return dataclasses.replace(self, icc_profile=None)

    def pil_info(self, width: int, height: int) -> dict:
        """Pillow ``info`` entries (``icc_profile``, ``exif``, ``dpi``) of an output."""
        info = {"icc_profile": self.icc_profile, "exif": self.exif_for(width, height), "dpi": self.dpi}
        return {k: v for k, v in info.items() if v is not None}


NO_META = ImageMeta()


def icc_colour_space(profile: bytes) -> str:
    """The data colour space an ICC profile describes ('RGB', 'GRAY', 'CMYK'...), or ''."""
    return profile[16:20].decode("ascii", "replace").strip() if len(profile) >= 128 else ""


def clean_exif(src: Image.Exif) -> bytes | None:
    """An EXIF block of ``src``'s primary-image tags (:data:`EXIF_IFD0_TAGS`) with its
    Exif, GPS and interoperability sub-IFDs, orientation 1; None when there is none."""
    keep = {tag: src[tag] for tag in src if tag in EXIF_IFD0_TAGS}
    if not keep:
        return None
    exif = Image.Exif()
    for tag, value in keep.items():
        if tag in (EXIF_IFD, GPS_IFD):
            value = dict(src.get_ifd(tag))
            if tag == EXIF_IFD and INTEROP_IFD in value:
                value[INTEROP_IFD] = dict(src.get_ifd(INTEROP_IFD))
                if not value[INTEROP_IFD]:
                    del value[INTEROP_IFD]
            if not value:
                continue
        exif[tag] = value
    exif[EXIF_ORIENTATION] = 1
    return exif.tobytes()


def _dpi(value) -> tuple[float, float] | None:
    try:
        x, y = (float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return (x, y) if x > 0 and y > 0 and np.isfinite([x, y]).all() else None


def read_meta(img: Image.Image, grey: bool) -> ImageMeta:
    """The metadata of an open Pillow image whose pixels were read as grey or colour."""
    try:
        with quiet_exif_warnings():
            exif = clean_exif(img.getexif())
    except Exception:  # malformed EXIF is dropped, not an error
        exif = None
    return ImageMeta(img.info.get("icc_profile") or None, exif, _dpi(img.info.get("dpi"))).matching(grey)


__all__ = ["EXIF_ORIENTATION", "EXIF_IFD0_TAGS", "ImageMeta", "NO_META", "exif_orientation", "apply_orientation",
           "orient", "read_meta", "clean_exif", "icc_colour_space", "quiet_exif_warnings"]

"""Which files are images: the one list of extensions picked up from folders."""

from __future__ import annotations

#: Extensions picked up when a folder is given as input.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")

__all__ = ["IMAGE_EXTENSIONS"]

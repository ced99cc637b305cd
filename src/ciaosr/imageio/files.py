"""Which files are images: the one extension list and the one folder lister, used by
``ciaosr upscale``, the benchmark and training datasets and validation alike."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import CiaosrError

#: Extensions of the image files taken from a folder (all read by Pillow).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".ppm")


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly in ``folder`` (by extension, not recursive), sorted by name.

    Hidden files (names starting with '.') are skipped: they are not images of the set
    (e.g. macOS ``._name.png`` resource forks).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CiaosrError(f"not a folder: {folder}")
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS)


__all__ = ["IMAGE_EXTENSIONS", "list_images"]

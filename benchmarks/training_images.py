"""The training images the side-by-side benchmarks use (train_vs_official.py,
finetune_official_liif.py): links to shared images in one folder."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def shared_root() -> Path:
    return Path(os.environ.get("CIAOSR_SHARED", REPO.parent / "shared"))


def default_images(out: Path) -> Path:
    """40 links: the 6 large DIV2K-mini / Flickr2K-mini images and 34 of T91 (>= 193 px)."""
    folder = out / "images"
    if folder.exists():
        return folder
    folder.mkdir(parents=True)
    data = shared_root() / "datasets"
    files = sorted((data / "DIV2K-mini" / "HR").glob("*.png")) + sorted((data / "Flickr2K-mini" / "HR").glob("*.png"))
    t91 = [f for f in sorted((data / "T91" / "HR").glob("*.png")) if min(Image.open(f).size) >= 193]
    for f in files + t91[:40 - len(files)]:
        (folder / f"{f.parent.parent.name}_{f.name}").symlink_to(f)
    return folder



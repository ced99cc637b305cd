"""Make docs/images/degradations.png: what ``ciaosr degrade`` makes of one photo.

A 160x160 crop of DIV2K image 0004 (shared/datasets/DIV2K-mini/HR, a training image)
goes through ``ciaosr degrade`` with both pipelines at x2 and x4, two draws each
(seed 0). Each low-resolution output is enlarged back to 160x160 by pixel repetition,
so its pixels stay visible, and put in a grid: one row per pipeline, the crop first.

    python scripts/degradation_figure.py                  # -> docs/images/degradations.png
    python scripts/degradation_figure.py --shared /path/to/shared -o figure.png

Deterministic: the same command makes the same file.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
SOURCE = "datasets/DIV2K-mini/HR/0004.png"
BOX = (1500, 600, 1660, 760)  # left, top, right, bottom: houses by the water
SCALES = (2, 4)
COUNT = 2
PIPELINES = ("realesrgan", "bsrgan")
LABEL = 14  # pixels of caption above each tile


def degraded(crop: Path, work: Path, pipeline: str, scale: int) -> list[Path]:
    from ciaosr.cli.main import main

    out = work / f"{pipeline}_x{scale}"
    argv = ["degrade", str(crop), "-o", str(out), "--scale", str(scale), "--pipeline", pipeline,
            "--count", str(COUNT), "--seed", "0"]
    if main(argv) != 0:
        sys.exit(f"ciaosr {' '.join(argv)} failed")
    return sorted(out.glob("*.png"))


def main() -> None:
    from ciaosr.atomic import write_atomic

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shared", default=os.environ.get("CIAOSR_SHARED", REPO.parent / "shared"),
                   help="the shared data folder (default: $CIAOSR_SHARED or ../shared)")
    p.add_argument("-o", "--output", default=REPO / "docs" / "images" / "degradations.png")
    args = p.parse_args()

    size = BOX[2] - BOX[0]
    cols = 1 + len(SCALES) * COUNT
    grid = Image.new("RGB", (cols * size, len(PIPELINES) * (size + LABEL)), "white")
    draw = ImageDraw.Draw(grid)
    with tempfile.TemporaryDirectory(prefix="ciaosr-figure-") as tmp:
        work = Path(tmp)
        crop = work / "div2k_0004_crop.png"
        Image.open(Path(args.shared) / SOURCE).convert("RGB").crop(BOX).save(crop)
        for row, pipeline in enumerate(PIPELINES):
            top = row * (size + LABEL)
            tiles = [(f"{pipeline}: GT {size}x{size}", Image.open(crop))]
            for scale in SCALES:
                for k, path in enumerate(degraded(crop, work, pipeline, scale), start=1):
                    lr = Image.open(path).convert("RGB")
                    tiles.append((f"x{scale} #{k} ({lr.width}x{lr.height})", lr.resize((size, size), Image.NEAREST)))
            for col, (caption, tile) in enumerate(tiles):
                grid.paste(tile, (col * size, top + LABEL))
                draw.text((col * size + 3, top + 1), caption, fill="black")

    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, lambda tmp: grid.save(tmp, format="PNG", optimize=True), overwrite=True)
    print(f"{out}: {grid.width}x{grid.height}, {out.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()

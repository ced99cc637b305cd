"""Draw a ``Comparison`` with Pillow: the whole image with the crop outlined, then the
crop of the ground truth and of each model side by side, each labelled with its name
and, given a ground truth, the crop's PSNR and SSIM."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..atomic import write_atomic
from .compare import Comparison

PANEL = 256  # crops are enlarged (nearest neighbour, whole factors) to about this size
GAP = 8
BOX_COLOUR = (230, 30, 30)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 (a scalable font)
    except TypeError:
        return ImageFont.load_default()


def _enlarge(crop: np.ndarray) -> Image.Image:
    h, w = crop.shape[:2]
    k = max(1, PANEL // max(h, w))
    return Image.fromarray(crop).resize((w * k, h * k), Image.NEAREST)


def _overview(comp: Comparison, height: int) -> Image.Image:
    img = Image.fromarray(comp.overview)
    f = height / img.height
    img = img.resize((max(1, round(img.width * f)), height), Image.LANCZOS)
    x, y, w, h = comp.box
    draw = ImageDraw.Draw(img)
    line = max(2, height // 128)
    draw.rectangle([x * f, y * f, (x + w) * f - 1, (y + h) * f - 1], outline=BOX_COLOUR, width=line)
    return img


def _caption(panel) -> list[str]:
    lines = [panel.label]
    if panel.psnr is not None:
        ssim = f" / {panel.ssim:.4f}" if panel.ssim is not None else ""
        lines.append(f"{panel.psnr:.2f} dB{ssim}")
    return lines


def render(comp: Comparison) -> Image.Image:
    crops = [_enlarge(p.image) for p in comp.panels]
    height = max(c.height for c in crops)
    tiles = [_overview(comp, height), *crops]
    captions = [[comp.overview_label]] + [_caption(p) for p in comp.panels]
    font = _font(15)
    line_h = 20
    text_h = line_h * max(len(c) for c in captions) + GAP
    width = sum(t.width for t in tiles) + GAP * (len(tiles) + 1)
    fig = Image.new("RGB", (width, height + text_h + 2 * GAP), "white")
    draw = ImageDraw.Draw(fig)
    x = GAP
    for tile, caption in zip(tiles, captions):
        fig.paste(tile, (x, GAP))
        for i, text in enumerate(caption):
            tw = draw.textlength(text, font=font)
            draw.text((x + (tile.width - tw) / 2, GAP + height + GAP // 2 + i * line_h), text, fill="black", font=font)
        x += tile.width + GAP
    return fig


def save_figure(comp: Comparison, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write the figure as PNG through a temporary file; an existing ``path`` is kept
    unless ``overwrite``."""
    fig = render(comp)
    return write_atomic(Path(path), lambda tmp: fig.save(tmp, format="PNG"), overwrite=overwrite)

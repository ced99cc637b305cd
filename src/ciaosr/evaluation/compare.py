"""The same crop of several models' outputs, scored against a ground truth: what
``ciaosr compare`` draws (the CiaoSR paper's Figures 4 to 6, for any models).

Each model (``bicubic`` included) upscales the whole LR as ``ciaosr eval`` does under
the LIIF protocol (whole image, clamped, not rounded), to ``round(h s) x round(w s)``,
or, given the HR, to the HR's size cropped to a multiple of the LR's (the protocol's
pairing). PSNR and SSIM are those of the shown crop, on Y as the protocol computes
them, leaving out the protocol's border (``ceil(s)`` pixels at each image edge): for
the whole image they are ``ciaosr eval``'s per-image figures.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..data.benchmark import load_rgb, scale_label
from ..errors import CiaosrError
from ..geometry import scaled_size
from ..metrics.psnr import psnr_liif
from ..metrics.ssim import WIN, ssim_y
from .protocol import Protocol
from .runner import load_eval_model, super_resolve


@dataclass
class Panel:
    label: str
    image: np.ndarray  # the crop, uint8 (h, w, 3)
    psnr: float | None = None
    ssim: float | None = None


@dataclass
class Comparison:
    panels: list[Panel]  # the ground truth first, when given
    overview: np.ndarray  # the whole ground truth (else the LR), uint8 (H, W, 3)
    box: tuple[int, int, int, int]  # the crop in the overview's pixels: x, y, w, h
    scale: float
    overview_label: str


def parse_crop(text: str | None) -> tuple[int, int, int, int] | None:
    """'X,Y,W,H' (output pixels) -> (x, y, w, h)."""
    if text is None:
        return None
    try:
        x, y, w, h = (int(t) for t in text.replace(" ", "").split(","))
    except ValueError:
        raise CiaosrError(f"--crop must be X,Y,W,H in output pixels (four whole numbers), got {text!r}") from None
    if x < 0 or y < 0 or w < 1 or h < 1:
        raise CiaosrError(f"--crop {text}: X and Y must be >= 0, W and H >= 1")
    return x, y, w, h


def _output_size(lr: torch.Tensor, scale: float, hr: torch.Tensor | None, gt_name: str) -> tuple[int, int]:
    h, w = lr.shape[-2:]
    if hr is None:
        return scaled_size((h, w), scale)
    if scale.is_integer():
        out = (h * int(scale), w * int(scale))
    else:
        out = scaled_size((h, w), scale)
    H, W = hr.shape[-2:]
    if not (out[0] <= H < out[0] + math.ceil(scale) and out[1] <= W < out[1] + math.ceil(scale)):
        raise CiaosrError(f"--gt {gt_name} is {W}x{H}: not the ground truth of a {w}x{h} LR at "
                          f"x{scale_label(scale)} (expected {out[1]}x{out[0]}, up to {math.ceil(scale) - 1} more)")
    return out


def _check_box(box, out_hw) -> tuple[int, int, int, int]:
    H, W = out_hw
    if box is None:
        return 0, 0, W, H
    x, y, w, h = box
    if x + w > W or y + h > H:
        raise CiaosrError(f"--crop {x},{y},{w},{h} leaves the {W}x{H} output")
    return box


def _scores(sr: torch.Tensor, hr: torch.Tensor, box, scale: float) -> tuple[float | None, float | None]:
    """PSNR and SSIM (LIIF protocol, Y) of the crop without the image's protocol border."""
    b = math.ceil(scale)
    H, W = hr.shape[-2:]
    x, y, w, h = box
    x0, y0, x1, y1 = max(x, b), max(y, b), min(x + w, W - b), min(y + h, H - b)
    if x1 - x0 < 1 or y1 - y0 < 1:
        return None, None
    s = sr[:, y0:y1, x0:x1].double()
    g = hr[:, y0:y1, x0:x1].double() / 255.0
    psnr = psnr_liif(s, g, scale, border=0)
    ssim = ssim_y(s, g, 0, protocol="liif") if min(x1 - x0, y1 - y0) >= WIN else None
    return psnr, ssim


def _to_u8(img: torch.Tensor) -> np.ndarray:
    return (img.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def compare(image: str | os.PathLike, models: Sequence[str], scale: float, *,
            crop: tuple[int, int, int, int] | None = None, gt: str | os.PathLike | None = None,
            device: str | None = None, chunk: int = 30000) -> Comparison:
    from ..runtime import resolve_device

    if not models:
        raise CiaosrError("no models given")
    scale = float(scale)
    if not math.isfinite(scale) or scale <= 1:
        raise CiaosrError(f"--scale must be above 1, got {scale:g}")
    lr = load_rgb(Path(image))
    hr = load_rgb(Path(gt)) if gt is not None else None
    out_hw = _output_size(lr, scale, hr, str(gt))
    box = _check_box(crop, out_hw)
    if hr is not None:
        hr = hr[:, : out_hw[0], : out_hw[1]]
    dev = resolve_device(device or "auto")
    loaded = [(str(name), load_eval_model(str(name), dev)) for name in models]  # all checked before any work
    x, y, w, h = box
    panels = [Panel("HR (ground truth)", hr[:, y:y + h, x:x + w].permute(1, 2, 0).numpy())] if hr is not None else []
    protocol = Protocol("liif")
    lr_f = (lr.to(dev, torch.float32) / 255.0).unsqueeze(0)
    for name, model in loaded:
        with torch.no_grad():
            sr = protocol.finalize(super_resolve(model, lr_f, out_hw, scale, protocol, chunk=chunk)[0].float()).cpu()
        psnr, ssim = _scores(sr, hr, box, scale) if hr is not None else (None, None)
        panels.append(Panel(_label(name), _to_u8(sr[:, y:y + h, x:x + w]), psnr, ssim))
    if hr is not None:
        return Comparison(panels, hr.permute(1, 2, 0).numpy(), box, scale, "ground truth, crop outlined")
    # Without a ground truth the overview is the LR, with the crop in its pixels.
    lb = (int(x / scale), int(y / scale), max(1, round(w / scale)), max(1, round(h / scale)))
    return Comparison(panels, lr.permute(1, 2, 0).numpy(), lb, scale, "LR input, crop outlined")


def _label(name: str) -> str:
    """A checkpoint file is labelled by its file name, a model by its name."""
    p = Path(name)
    return p.stem if p.suffix in (".pth", ".pt", ".safetensors", ".ckpt") else name

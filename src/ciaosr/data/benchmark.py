"""Benchmark test sets: HR images paired with their low-resolution inputs.

Folder layout (the EDSR benchmark pack; SwinIR/BasicSR test sets use the same)::

    <root>/<Set>/HR/<name>.png
    <root>/<Set>/LR_bicubic/X<s>/<name>x<s>.png     (optional, integer s)

The official CiaoSR (mmediting) layout is understood too when present::

    <root>/<Set>/GTmod12/<name>.png
    <root>/<Set>/LRbicx<s>/<name>.png

How the pair is made depends on the protocol (see docs/evaluation.md):

* ``liif``: in-scale (integer s <= 4) uses the pre-made MATLAB-bicubic LR, paired
  with the HR by sorted name, the HR cropped at the top-left to (h_lr*s, w_lr*s). When
  the LR folder is absent the LR is made exactly as the pack was: HR cropped to a
  multiple of s, MATLAB ``imresize(hr, 1/s, 'bicubic')``, uint8. Other scales are made
  on the fly: ``h_lr = floor(H/s + 1e-9)``, HR cropped to ``round(h_lr*s)``, LR = PIL
  bicubic of the uint8 HR.
* ``mmedit``: HR cropped to a multiple of 12 (``GTmod12``); s <= 4 uses MATLAB bicubic
  of that (or ``LRbicx<s>`` when present); s > 4 the on-the-fly PIL rule above.

Images are loaded as RGB (a grey PNG becomes three equal channels) into uint8 tensors
(3, H, W).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image

from ..errors import CiaosrError
from ..imageio import list_images
from ..matlab_bicubic import imresize_uint8

__all__ = [
    "BenchmarkPair", "BenchmarkSet", "load_rgb",
    "lr_filename", "premade_lr_dir", "scale_label", "is_integer_scale", "modcrop",
    "matlab_downscale", "pil_downscale", "on_the_fly_pair",
]

PROTOCOLS = ("liif", "mmedit")


def is_integer_scale(s: float) -> bool:
    return float(s).is_integer()


def scale_label(s: float) -> str:
    """'2' for 2.0, '2.5' for 2.5: used in folder names and JSON keys."""
    s = float(s)
    return str(int(s)) if s.is_integer() else repr(s)


def lr_filename(stem: str, s: float) -> str:
    """EDSR benchmark naming: ``<name>x<s>.png``."""
    return f"{stem}x{scale_label(s)}.png"


def premade_lr_dir(dataset_dir: Path, s: float) -> Path:
    return Path(dataset_dir) / "LR_bicubic" / f"X{scale_label(s)}"


def load_rgb(path: Path) -> torch.Tensor:
    """An image file as a uint8 RGB tensor (3, H, W)."""
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise CiaosrError(f"cannot read image {path}: {exc}") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def modcrop(img: torch.Tensor, m: int) -> torch.Tensor:
    """Crop (..., H, W) at the top-left to multiples of ``m``."""
    h, w = img.shape[-2:]
    return img[..., : h - h % m, : w - w % m]


def matlab_downscale(hr: torch.Tensor, s: int) -> torch.Tensor:
    """MATLAB ``imresize(hr, 1/s, 'bicubic')`` of a uint8 (3, H, W) HR (H, W multiples of s)."""
    return imresize_uint8(hr.unsqueeze(0), scale=1.0 / s)[0]


def pil_downscale(hr: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """PIL bicubic (antialiased, fixed-point) resize of a uint8 (3, H, W) image to (h, w):
    the LR of the on-the-fly benchmark rule and of training samples, as the official
    LIIF and mmediting pipelines make them."""
    arr = hr.permute(1, 2, 0).contiguous().numpy()
    out = Image.fromarray(arr, mode="RGB").resize((size[1], size[0]), Image.BICUBIC)
    return torch.from_numpy(np.asarray(out).copy()).permute(2, 0, 1).contiguous()


def on_the_fly_pair(hr: torch.Tensor, s: float) -> tuple[torch.Tensor, torch.Tensor]:
    """LIIF / mmediting rule for scales without pre-made LR: (cropped HR, LR)."""
    h, w = hr.shape[-2:]
    h_lr = math.floor(h / s + 1e-9)
    w_lr = math.floor(w / s + 1e-9)
    if h_lr < 1 or w_lr < 1:
        raise CiaosrError(f"image of {h}x{w} is too small for scale x{scale_label(s)}")
    hr = hr[..., : round(h_lr * s), : round(w_lr * s)]
    return hr, pil_downscale(hr, (h_lr, w_lr))


@dataclass
class BenchmarkPair:
    name: str  # HR file stem
    hr: torch.Tensor  # uint8 (3, H, W), already cropped to match the LR
    lr: torch.Tensor  # uint8 (3, h, w)
    lr_source: str  # "file" or "generated"


class BenchmarkSet:
    """The pairs of one test set at one scale under one protocol.

    ``dataset_dir`` holds ``HR/`` (or ``GTmod12/``). Iterating yields
    ``BenchmarkPair`` in sorted HR-name order; LR files are loaded lazily.
    """

    def __init__(self, dataset_dir: Path, scale: float, protocol: str = "liif"):
        self.dir = Path(dataset_dir)
        self.scale = float(scale)
        if self.scale <= 1:
            raise CiaosrError(f"scale must be above 1, got {scale_label(scale)}")
        if protocol not in PROTOCOLS:
            raise CiaosrError(f"unknown protocol {protocol!r} (choose from {', '.join(PROTOCOLS)})")
        self.protocol = protocol
        if protocol == "mmedit" and not is_integer_scale(self.scale):
            raise CiaosrError(f"the mmedit protocol needs integer scales, got x{scale_label(scale)}")
        gtmod12 = self.dir / "GTmod12"
        hr_dir = self.dir / "HR"
        self.hr_is_mod12 = protocol == "mmedit" and gtmod12.is_dir()
        self.hr_dir = gtmod12 if self.hr_is_mod12 else hr_dir
        if not self.hr_dir.is_dir():
            raise CiaosrError(f"no HR folder in {self.dir} (expected {hr_dir})")
        self.hr_files = list_images(self.hr_dir)
        if not self.hr_files:
            raise CiaosrError(f"no images in {self.hr_dir}")
        self.lr_files = self._find_lr_files()

    # -- which LR -----------------------------------------------------------
    def _lr_dir(self) -> Path | None:
        s = self.scale
        if not is_integer_scale(s) or s > 4:
            return None  # made on the fly under both protocols
        if self.protocol == "liif":
            d = premade_lr_dir(self.dir, s)
        else:
            d = self.dir / f"LRbicx{int(s)}"
        return d if d.is_dir() else None

    def _find_lr_files(self) -> list[Path] | None:
        d = self._lr_dir()
        if d is None:
            return None
        files = list_images(d)
        if len(files) != len(self.hr_files):
            raise CiaosrError(
                f"{d} has {len(files)} images but {self.hr_dir} has {len(self.hr_files)}; they pair by sorted name")
        return files

    @property
    def lr_source(self) -> str:
        if self.lr_files is not None:
            return "file"
        if is_integer_scale(self.scale) and self.scale <= 4:
            return "matlab-bicubic"
        return "pil-bicubic"

    def __len__(self) -> int:
        return len(self.hr_files)

    def names(self) -> list[str]:
        return [p.stem for p in self.hr_files]

    def __getitem__(self, i: int) -> BenchmarkPair:
        hr_path = self.hr_files[i]
        hr = load_rgb(hr_path)
        if self.protocol == "mmedit" and not self.hr_is_mod12:
            hr = modcrop(hr, 12)
        s = self.scale
        if self.lr_files is not None:
            lr = load_rgb(self.lr_files[i])
            si = int(s)
            th, tw = lr.shape[-2] * si, lr.shape[-1] * si
            if th > hr.shape[-2] or tw > hr.shape[-1]:
                raise CiaosrError(
                    f"LR {self.lr_files[i].name} ({lr.shape[-1]}x{lr.shape[-2]}) times {si} is larger than "
                    f"HR {hr_path.name} ({hr.shape[-1]}x{hr.shape[-2]})")
            return BenchmarkPair(hr_path.stem, hr[..., :th, :tw], lr, "file")
        if is_integer_scale(s) and s <= 4:
            hr = modcrop(hr, int(s))
            if hr.shape[-2] == 0 or hr.shape[-1] == 0:
                raise CiaosrError(f"image {hr_path.name} is too small for scale x{scale_label(s)}")
            return BenchmarkPair(hr_path.stem, hr, matlab_downscale(hr, int(s)), "generated")
        hr, lr = on_the_fly_pair(hr, s)
        return BenchmarkPair(hr_path.stem, hr, lr, "generated")

    def __iter__(self) -> Iterator[BenchmarkPair]:
        for i in range(len(self)):
            yield self[i]

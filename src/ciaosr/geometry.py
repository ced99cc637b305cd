"""Geometry in one place: output sizes, axis order, continuous coordinates and cells.

Axis order. Inside the package every size is (height, width) and every scale (height
factor, width factor), as tensors are laid out. Only where a person types a size, on
the command line or in ``ciaosr.upscale(size=..., scale=...)``, is it (width, height),
as image tools write it; :class:`Resize` turns that into (H, W) once, at the boundary,
and validates it there.

Output size. Each axis is ``round(input * factor)`` with Python's ``round`` (halves to
even), as the official code does. (MATLAB's ``imresize`` rounds up instead; that rule
belongs to ``matlab_bicubic``.)

Coordinates. A coordinate is (row, col) in [-1, 1] at pixel centres, in the LIIF /
mmediting convention: for an axis of n pixels the centres are ``-1 + 1/n + 2i/n``.
Element 0 is the row (height) axis, so ``grid_sample`` must be given ``coord.flip(-1)``.
The cell of a query on an output of size h x w is ``(2/h, 2/w)``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import torch

from .errors import CiaosrError


# --------------------------------------------------------------------------------------
# Coordinates and cells
# --------------------------------------------------------------------------------------
def axis_centres(n: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Pixel-centre coordinates of an axis of ``n`` pixels in [-1, 1]."""
    if torch.compiler.is_exporting() and dtype == torch.float32:
        # In an ONNX graph n is a tensor and Python's double arithmetic would become float32
        # arithmetic, rounding -1 + r twice: the scalars are made in float64 and rounded
        # once, as below, so that the graph's centres equal these bit for bit (a query on a
        # pixel centre has neighbour offsets of rounding size, whose ratios are LIIF's weights).
        n64 = torch.tensor(n, dtype=torch.float64, device=device)
        lo, step = (1 / n64 - 1).float(), (2 / n64).float()
        return step * torch.arange(n, device=device, dtype=torch.float32) + lo
    r = 1.0 / n
    return -1 + r + (2 * r) * torch.arange(n, device=device, dtype=torch.float32).to(dtype)


def make_coord(shape: tuple[int, int], device=None, dtype=torch.float32) -> torch.Tensor:
    """The full (h*w, 2) grid of (row, col) centres of an h x w image, row-major."""
    h, w = shape
    rows = axis_centres(h, device, dtype)
    cols = axis_centres(w, device, dtype)
    grid = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1)
    return grid.reshape(-1, 2)


def make_cell(shape: tuple[int, int], n: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(n, 2) cells ``(2/h, 2/w)`` for ``n`` queries on an h x w output."""
    h, w = shape
    cell = torch.tensor([2.0 / h, 2.0 / w], device=device, dtype=dtype)
    return cell.expand(n, 2).clone()


def tile_axis(n_lr: int, n_out: int, start: int, stop: int, idx: np.ndarray) -> np.ndarray:
    """Coordinates, in the [-1, 1] frame of the LR window [start, stop) of an axis, of the
    output pixels ``idx`` of the whole image's output grid (``n_out`` pixels from
    ``n_lr``): the centre of output pixel i lies ``(i + 0.5) n_lr / n_out`` LR pixels
    from the image's edge."""
    u = (idx.astype(np.float64) + 0.5) * (n_lr / n_out)
    return -1.0 + 2.0 * (u - start) / (stop - start)


def tile_queries(lr_hw: tuple[int, int], out_hw: tuple[int, int], box: tuple[int, int, int, int],
                 rows: np.ndarray, cols: np.ndarray, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(len(rows)*len(cols), 2) coordinates and cells, in the frame of the LR window
    ``box = (top, bottom, left, right)``, of the whole image's output pixels ``rows`` x
    ``cols`` (row-major). The cell is the whole output's ``2 / h`` measured in window
    units, so in LR pixels every window sees the scale the whole image is upscaled by."""
    (H, W), (h, w), (r0, r1, c0, c1) = lr_hw, out_hw, box
    ty = torch.from_numpy(tile_axis(H, h, r0, r1, rows)).float().to(device)
    tx = torch.from_numpy(tile_axis(W, w, c0, c1, cols)).float().to(device)
    coord = torch.stack(torch.meshgrid(ty, tx, indexing="ij"), dim=-1).view(-1, 2)
    return coord, _window_cell(lr_hw, out_hw, box, coord.shape[0], device)


def pixel_queries(lr_hw: tuple[int, int], out_hw: tuple[int, int], box: tuple[int, int, int, int],
                  rows: np.ndarray, cols: np.ndarray, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """As :func:`tile_queries`, for the output pixels ``(rows[i], cols[i])`` (paired, not a
    grid): (len(rows), 2) coordinates and cells."""
    (H, W), (h, w), (r0, r1, c0, c1) = lr_hw, out_hw, box
    ty = torch.from_numpy(tile_axis(H, h, r0, r1, np.asarray(rows))).float()
    tx = torch.from_numpy(tile_axis(W, w, c0, c1, np.asarray(cols))).float()
    coord = torch.stack([ty, tx], dim=-1).to(device)
    return coord, _window_cell(lr_hw, out_hw, box, coord.shape[0], device)


def _window_cell(lr_hw, out_hw, box, n: int, device) -> torch.Tensor:
    (H, W), (h, w), (r0, r1, c0, c1) = lr_hw, out_hw, box
    cell = torch.tensor([2.0 / h * H / (r1 - r0), 2.0 / w * W / (c1 - c0)], dtype=torch.float32, device=device)
    return cell.expand(n, 2)


def window_pixels(n_lr: int, n_out: int, start: int, stop: int) -> tuple[int, int]:
    """The output pixels ``first .. end - 1`` of an axis (``n_out`` pixels from ``n_lr``)
    whose centres lie inside the LR window ``[start, stop)``: pixel i's centre is
    ``(i + 0.5) n_lr / n_out`` LR pixels from the edge. Exact integer arithmetic."""
    def first_at(lr_pos: int) -> int:  # the smallest i with (2i + 1) n_lr >= 2 lr_pos n_out
        return -((n_lr - 2 * lr_pos * n_out) // (2 * n_lr))
    return first_at(start), first_at(stop)


# --------------------------------------------------------------------------------------
# Output sizes
# --------------------------------------------------------------------------------------
def scaled_size(in_hw: tuple[int, int], scale: float | tuple[float, float]) -> tuple[int, int]:
    """Output (h, w) for an input (h, w) and a scale: one factor, or (s_h, s_w)."""
    s_h, s_w = (scale, scale) if isinstance(scale, (int, float)) else scale
    return round(in_hw[0] * s_h), round(in_hw[1] * s_w)


def downscaled_size(in_hw: tuple[int, int], scale: float | tuple[float, float]) -> tuple[int, int]:
    """The low-resolution (h, w) of an input (h, w) shrunk by a scale (one factor, or
    (s_h, s_w)): ``round(h / s_h)``, ``round(w / s_w)``, at least 1 pixel a side. The
    inverse of :func:`scaled_size`, used where training data is made by degrading."""
    s_h, s_w = (scale, scale) if isinstance(scale, (int, float)) else scale
    return max(1, round(in_hw[0] / s_h)), max(1, round(in_hw[1] / s_w))


def _factor(value, what: str = "scale") -> float:
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise CiaosrError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(f) or f <= 0:
        raise CiaosrError(f"{what} must be a positive finite number, got {value!r}")
    return f


def _whole(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


_X = "xX\u00d7"
_SEP = re.compile(rf"\s*[{_X}]\s*")
_SIZE = re.compile(rf"^\s*(\d*)\s*[{_X}]\s*(\d*)\s*$")
_SCALE_HINT = "a number like 4, 4x, x4 or 3.7, or width x height factors like 2x3.5"


def _side(value) -> int | None:
    """One side of a size: whole pixels, at least 1, or None (from the aspect ratio)."""
    if value is None:
        return None
    if not _whole(value):
        raise CiaosrError(f"size must be whole pixels, got {value!r}")
    if value < 1:
        raise CiaosrError(f"size must be at least 1 pixel a side, got {value}")
    return int(value)


@dataclass(frozen=True)
class Resize:
    """What a person asked for, validated: a scale per axis or a size, in (H, W).

    A size may leave one side None: that side then keeps the input's aspect ratio,
    ``round(other * new / this)`` (e.g. 1000 x 600 to width 1920: height
    ``round(600 * 1920 / 1000) = 1152``), at least 1 pixel.
    """

    scale: tuple[float, float] | None = None  # (height factor, width factor)
    size: tuple[int | None, int | None] | None = None  # (height, width); one may be None

    @classmethod
    def of(cls, scale=None, size=None) -> "Resize":
        """From the Python API's values: ``scale`` one factor or (width factor, height
        factor); ``size`` (width, height), one of them None to keep the aspect ratio.
        Exactly one of the two."""
        if isinstance(scale, Resize):
            return scale
        if (scale is None) == (size is None):
            raise CiaosrError("give exactly one of scale and size")
        if size is not None:
            try:
                w, h = size
            except (TypeError, ValueError):
                raise CiaosrError(f"size must be (width, height), got {size!r}") from None
            if w is None and h is None:
                raise CiaosrError("size needs a width or a height (the other may be None to keep the aspect ratio)")
            return cls(size=(_side(h), _side(w)))
        if isinstance(scale, (tuple, list)):
            if len(scale) != 2:
                raise CiaosrError(f"scale must be one factor or (width factor, height factor), got {scale!r}")
            return cls(scale=(_factor(scale[1]), _factor(scale[0])))
        f = _factor(scale)
        return cls(scale=(f, f))

    @classmethod
    def parse(cls, scale: str | None = None, size: str | None = None) -> "Resize":
        """From the command line: ``--scale 4``, ``4x``, ``x4``, ``4X`` or ``2x3.5``
        (width x height factors); ``--size 1920x1080`` (width x height), ``1920x`` or
        ``x1080`` (the other side from the aspect ratio)."""
        if scale is not None and size is not None:
            raise CiaosrError("give either --scale or --size, not both")
        if scale is None and size is None:
            raise CiaosrError("give --scale S (or SXxSY) or --size WxH")
        if size is not None:
            m = _SIZE.match(size)
            try:
                w, h = (int(g) if g else None for g in m.groups())
                return cls.of(size=(w, h))
            except (AttributeError, ValueError, CiaosrError):
                raise CiaosrError(f"--size must be whole pixels WIDTHxHEIGHT, at least 1x1 (e.g. 1920x1080, "
                                  f"or 1920x / x1080 to keep the aspect ratio), got '{size}'") from None
        texts = _SEP.split(scale.strip())
        if len(texts) > 1 and texts[0] == "":  # x4, x2x3.5
            texts = texts[1:]
        elif len(texts) == 2 and texts[1] == "":  # 4x
            texts = texts[:1]
        for part in texts if len(texts) <= 2 else [scale]:
            try:
                float(part)
            except ValueError:
                raise CiaosrError(f"--scale: '{scale}' is not a number (give {_SCALE_HINT})") from None
        try:
            return cls.of(scale=texts if len(texts) == 2 else texts[0])  # typed width x height
        except CiaosrError:
            raise CiaosrError(f"--scale must be a positive finite number, got '{scale}'") from None

    def output_size(self, in_hw: tuple[int, int], max_pixels: int | None = None,
                    raise_limit: str = "raise it with --max-pixels / max_pixels") -> tuple[int, int]:
        """(h, w) of the output for an input (h, w); refused when it has more than
        ``max_pixels`` pixels, the error ending with ``raise_limit`` (how to raise it)."""
        if self.scale is not None:
            h, w = scaled_size(in_hw, self.scale)
        else:
            h, w = self.size
            if h is None:
                h = max(1, round(in_hw[0] * w / in_hw[1]))
            elif w is None:
                w = max(1, round(in_hw[1] * h / in_hw[0]))
        if h < 1 or w < 1:
            raise CiaosrError(f"output size {w}x{h} is less than 1 pixel")
        if max_pixels is not None and w * h > max_pixels:
            raise CiaosrError(f"output {w}x{h} has {w * h:,} pixels, over the limit of {max_pixels:,} "
                              f"({raise_limit})")
        return h, w

    @property
    def keeps_aspect(self) -> bool:
        """A size with one side from the input's aspect ratio (``1920x``, ``x1080``)."""
        return self.size is not None and None in self.size

    def for_input(self, in_hw: tuple[int, int]) -> "Resize":
        """This resize for an input (h, w): a size that keeps the aspect ratio gets its
        other side (``1920x`` of a 1000 x 600 image is ``1920x1152``); others are the
        same for every input."""
        return Resize(size=self.output_size(in_hw)) if self.keeps_aspect else self

    @property
    def label(self) -> str:
        """What it does, as in a file name: ``x3.7``, ``x2x3.5`` (width x height),
        ``1920x1080``, ``1920x`` / ``x1080`` (the other side from the aspect ratio;
        ``for_input`` gives the size in full)."""
        if self.size is not None:
            h, w = ("" if v is None else v for v in self.size)
            return f"{w}x{h}"
        s_h, s_w = self.scale
        return f"x{s_w:g}" if s_h == s_w else f"x{s_w:g}x{s_h:g}"

    @property
    def description(self) -> str:
        """What it does, in words: ``x3.7``, ``x2 wide, x3.5 high``, ``size 1920x1080``,
        ``width 1920, aspect kept``."""
        if self.size is not None:
            h, w = self.size
            if h is None:
                return f"width {w}, aspect kept"
            if w is None:
                return f"height {h}, aspect kept"
            return f"size {self.label}"
        s_h, s_w = self.scale
        return self.label if s_h == s_w else f"x{s_w:g} wide, x{s_h:g} high"

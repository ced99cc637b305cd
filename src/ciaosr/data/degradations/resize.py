"""Resizing a batch to a size by one of the modes the degradation pipelines draw from.

``area``, ``bilinear`` and ``bicubic`` are ``torch.nn.functional.interpolate`` without
antialiasing, as Real-ESRGAN resizes (``bicubic`` has a = -0.75, as OpenCV's
``INTER_CUBIC`` in the BSRGAN and mmediting code; ``area`` averages the covered pixels
when shrinking and repeats pixels when enlarging). ``matlab_bicubic`` is MATLAB's
antialiased ``imresize`` (BSRGAN's ``imresize_np``), from ``ciaosr.matlab_bicubic``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...matlab_bicubic import imresize

#: The modes the settings may name.
RESIZE_MODES = ("area", "bilinear", "bicubic", "matlab_bicubic")


def resize(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """(n, C, H, W) -> (n, C, h, w); an unchanged size returns ``x`` itself."""
    size = (int(size[0]), int(size[1]))
    if tuple(x.shape[-2:]) == size:
        return x
    if mode == "area":
        return F.interpolate(x, size=size, mode="area")
    if mode in ("bilinear", "bicubic"):
        return F.interpolate(x, size=size, mode=mode, align_corners=False)
    if mode == "matlab_bicubic":
        return imresize(x, size=size)
    raise ValueError(f"unknown resize mode {mode!r} (one of {', '.join(RESIZE_MODES)})")

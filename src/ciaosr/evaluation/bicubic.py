"""The ``bicubic`` baseline model of ``ciaosr eval``."""

from __future__ import annotations

import torch

from ..matlab_bicubic import imresize_uint8

BICUBIC = "bicubic"


class BicubicModel:
    """The classic baseline: MATLAB ``imresize(lr, [h w], 'bicubic')`` of the 8-bit LR.

    The LR is taken to uint8 (benchmark LRs are 8-bit already) and resized exactly as
    MATLAB resizes a uint8 image, so the output is 8-bit too: the literature figures.
    """

    name = BICUBIC

    def to(self, device):
        return self

    def eval(self):
        return self

    @torch.no_grad()
    def upsample(self, lr: torch.Tensor, size: tuple[int, int], chunk: int = 30000) -> torch.Tensor:
        lr8 = (lr.clamp(0, 1) * 255.0).round().to(torch.uint8)
        out = imresize_uint8(lr8, size=(int(size[0]), int(size[1])))
        return out.to(lr.dtype) / 255.0

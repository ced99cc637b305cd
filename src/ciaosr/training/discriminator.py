"""The U-Net discriminator with spectral normalisation of Real-ESRGAN, as real-world CiaoSR
uses it (``mid_channels=64``, skip connections).

A 3x3 conv to C channels, three stride-2 4x4 convs (C -> 2C -> 4C -> 8C), then three
stages of x2 bilinear upsampling and a 3x3 conv (8C -> 4C -> 2C -> C), each added to the
encoder feature of its resolution (the skip connections), two more 3x3 convs and a 3x3
conv to one logit per pixel. Every conv but the first and the last is bias-free and
spectrally normalised; LeakyReLU(0.2) after each but the last. The input's height and
width must be multiples of 8 (the skip sums need the resolutions to match).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def _sn_conv(cin: int, cout: int, kernel: int, stride: int) -> nn.Module:
    return spectral_norm(nn.Conv2d(cin, cout, kernel, stride, 1, bias=False))


class UNetDiscriminatorSN(nn.Module):
    def __init__(self, in_channels: int = 3, channels: int = 64, skip: bool = True):
        super().__init__()
        c = int(channels)
        if c < 1:
            raise ValueError(f"discriminator channels must be positive, got {channels}")
        self.skip = bool(skip)
        self.conv_in = nn.Conv2d(in_channels, c, 3, 1, 1)
        self.down = nn.ModuleList([_sn_conv(c, 2 * c, 4, 2), _sn_conv(2 * c, 4 * c, 4, 2),
                                   _sn_conv(4 * c, 8 * c, 4, 2)])
        self.up = nn.ModuleList([_sn_conv(8 * c, 4 * c, 3, 1), _sn_conv(4 * c, 2 * c, 3, 1),
                                 _sn_conv(2 * c, c, 3, 1)])
        self.tail = nn.ModuleList([_sn_conv(c, c, 3, 1), _sn_conv(c, c, 3, 1)])
        self.conv_out = nn.Conv2d(c, 1, 3, 1, 1)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 1, H, W) logits (H, W multiples of 8)."""
        if img.shape[-2] % 8 or img.shape[-1] % 8:
            raise ValueError(f"the U-Net discriminator needs sizes that are multiples of 8, got {tuple(img.shape[-2:])}")
        act = lambda x: F.leaky_relu(x, 0.2)  # noqa: E731
        x = act(self.conv_in(img))
        skips = [x]
        for conv in self.down:
            x = act(conv(x))
            skips.append(x)
        skips.pop()  # the deepest feature is not a skip
        for conv in self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = act(conv(x))
            if self.skip:
                x = x + skips.pop()
        for conv in self.tail:
            x = act(conv(x))
        return self.conv_out(x)

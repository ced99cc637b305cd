"""EDSR feature trunk (Lim et al. 2017) without its upsampling tail.

Parameter names follow the mmediting layout that the official CiaoSR checkpoints use:
``conv_first``, ``body.{i}.conv1``, ``body.{i}.conv2``, ``conv_after_body``.
"""

from __future__ import annotations

import torch
from torch import nn


class ResidualBlock(nn.Module):
    """conv3x3 - ReLU - conv3x3, scaled by ``res_scale``, plus identity."""

    def __init__(self, channels: int, res_scale: float = 1.0):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.res_scale = res_scale
        self._init_weights()

    def _init_weights(self):
        # As the official code: kaiming-normal (fan_in) scaled by 0.1, zero bias.
        for conv in (self.conv1, self.conv2):
            nn.init.kaiming_normal_(conv.weight, a=0, mode="fan_in")
            conv.weight.data.mul_(0.1)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.relu(self.conv1(x)))
        if self.res_scale != 1.0:
            out = out * self.res_scale
        return x + out


class EDSR(nn.Module):
    """EDSR trunk: ``conv_first``, ``num_blocks`` residual blocks, ``conv_after_body``,
    long skip from the ``conv_first`` output. Output: ``mid_channels`` features at
    the input resolution.

    ``EDSR()`` is EDSR-baseline (16 blocks, 64 channels); the full EDSR is
    ``EDSR(mid_channels=256, num_blocks=32, res_scale=0.1)``.
    """

    def __init__(self, in_channels: int = 3, mid_channels: int = 64, num_blocks: int = 16,
                 res_scale: float = 1.0):
        super().__init__()
        self.conv_first = nn.Conv2d(in_channels, mid_channels, 3, padding=1)
        self.body = nn.Sequential(*[ResidualBlock(mid_channels, res_scale) for _ in range(num_blocks)])
        self.conv_after_body = nn.Conv2d(mid_channels, mid_channels, 3, padding=1)
        self.out_dim = mid_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_first(x)
        return x + self.conv_after_body(self.body(x))


def args_from_state_dict(sd: dict[str, torch.Tensor]) -> dict:
    """Constructor arguments from a trunk-level state dict (``conv_first.weight``...).

    ``res_scale`` is not visible in the weights: 64-channel trunks are taken as
    EDSR-baseline (1.0), wider ones as full EDSR (0.1), the published settings.
    """
    mid, in_ch = sd["conv_first.weight"].shape[:2]
    blocks = {int(k.split(".")[1]) for k in sd if k.startswith("body.") and k.endswith("conv1.weight")}
    return {
        "in_channels": int(in_ch),
        "mid_channels": int(mid),
        "num_blocks": len(blocks),
        "res_scale": 1.0 if mid <= 64 else 0.1,
    }

"""EDSR feature trunk (Lim et al. 2017) without its upsampling tail.

Parameter names follow the mmediting layout that the official CiaoSR checkpoints use:
``conv_first``, ``body.{i}.conv1``, ``body.{i}.conv2``, ``conv_after_body``.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from ..models.registry import register_encoder
from .keys import rename_keys


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


@register_encoder("edsr-baseline", description="EDSR-baseline: 16 residual blocks, 64 channels")
@register_encoder("edsr", defaults={"mid_channels": 256, "num_blocks": 32, "res_scale": 0.1},
                  description="EDSR: 32 residual blocks, 256 channels, res-scale 0.1")
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

    # --- official checkpoints ------------------------------------------------------
    @staticmethod
    def from_liif_keys(sd: dict) -> dict:
        """LIIF's EDSR names (head.0, body.i.body.{0,2}, body.N) -> conv_first /
        body.i.conv{1,2} / conv_after_body; other state dicts unchanged."""
        if "head.0.weight" not in sd:
            return sd
        blocks = [int(m.group(1)) for k in sd if (m := re.match(r"body\.(\d+)\.body\.0\.weight$", k))]
        last = max(blocks) + 1 if blocks else 0
        return rename_keys(sd, [(r"^head\.0\.", "conv_first."), (rf"^body\.{last}\.", "conv_after_body."),
                                (r"^body\.(\d+)\.body\.0\.", r"body.\1.conv1."),
                                (r"^body\.(\d+)\.body\.2\.", r"body.\1.conv2.")],
                           drop=("sub_mean.", "add_mean.", "tail."))

    @staticmethod
    def detect(sd: dict, spec_args: dict | None = None) -> tuple[str, dict] | None:
        """(registered name, constructor args) of a trunk state dict in our key layout,
        or None if it is not an EDSR trunk. ``res_scale`` is not visible in the weights:
        it is taken from the official spec's arguments when given, else 1.0 for 64-channel
        trunks (EDSR-baseline) and 0.1 for wider ones (EDSR), the published settings."""
        if "body.0.conv1.weight" not in sd:
            return None
        mid, in_ch = sd["conv_first.weight"].shape[:2]
        blocks = {int(k.split(".")[1]) for k in sd if k.startswith("body.") and k.endswith("conv1.weight")}
        args = {"in_channels": int(in_ch), "mid_channels": int(mid), "num_blocks": len(blocks),
                "res_scale": 1.0 if mid <= 64 else 0.1}
        if spec_args and "res_scale" in spec_args:
            args["res_scale"] = float(spec_args["res_scale"])
        return ("edsr-baseline" if mid <= 64 else "edsr"), args

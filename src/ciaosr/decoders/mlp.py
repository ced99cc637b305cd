"""The MLP shared by the implicit decoders: hidden Linear + activation layers (ReLU, or
GELU for ITSRN), then a Linear.

Parameters are ``layers.{0,2,4,...}``, the layout of the official LIIF, LTE, ITSRN and
CiaoSR checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


ACTIVATIONS = {"relu": lambda: nn.ReLU(inplace=True), "gelu": nn.GELU}


class MLP(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, hidden: Sequence[int] = (256, 256, 256, 256),
                 act: str = "relu"):
        super().__init__()
        if act not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, not {act!r}")
        layers: list[nn.Module] = []
        last = in_dim
        for width in hidden:
            layers += [nn.Linear(last, width), ACTIVATIONS[act]()]
            last = width
        layers.append(nn.Linear(last, out_dim))
        self.layers = nn.Sequential(*layers)
        self.in_dim = in_dim
        self.out_dim = out_dim

    def forward(self, x):
        shape = x.shape[:-1]
        return self.layers(x.reshape(-1, x.shape[-1])).view(*shape, -1)

"""OPE-SR's orthogonal position encoding upsampler (Song et al., CVPR 2023), as the
official code (gaochao-s/ope-sr, ``models/OPE_linearUp.py``: ``OPE-net`` and its
``OPE_render_intp``) computes it. The decoder has no parameters.

The encoder's C = 3 (2n + 1)^2 channels at each LR pixel are, per colour, the (2n + 1) x
(2n + 1) coefficients of a 2D Fourier series (``max_freq`` n). For a query and each of
LIIF's four neighbouring LR pixels, with ``rel = (coord - centre) * (H, W)`` (LR pixels):

- ``X = [1, sqrt2 cos(w x), sqrt2 sin(w x), sqrt2 cos(2 w x), ..., sqrt2 sin(n w x)]`` for
  the row offset ``x`` and ``Y`` the same for the column offset (``w = pi / 2``);
- each colour ``c``: ``X^T L_c Y`` (``L_c`` the neighbour's coefficients, row-major
  ``i * (2n + 1) + j``, colours in channel blocks R, G, B);

and LIIF's area weights blend the four. No global residual; input and target normalised
with ``(x - 0.5) / 0.5``; no cell. The official configurations use n = 3 (147 channels) on
a 147-channel EDSR-baseline or RDN (``encoder_args`` below), whose last layer is then
the coefficients; other encoders would need other widths.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import CiaosrError
from ..models.registry import register_decoder
from .base import Decoder
from .modulation import lookup_neighbours
from .sampling import area_weights, from_pixel_tables, pixel_tables

#: The official configurations' series order, and the channels it takes.
MAX_FREQ = 3
OPE_CHANNELS = 3 * (2 * MAX_FREQ + 1) ** 2


def ope_basis(x: Tensor, max_freq: int, omega: float) -> Tensor:
    """(...,) offsets -> (..., 2n + 1): ``[1, sqrt2 cos(k w x), sqrt2 sin(k w x)]`` for
    k = 1..n, in that interleaved order."""
    terms = [torch.ones_like(x)]
    for k in range(1, max_freq + 1):
        terms += [math.sqrt(2) * torch.cos(x * omega * k), math.sqrt(2) * torch.sin(x * omega * k)]
    return torch.stack(terms, dim=-1)


@register_decoder("ope", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), residual=False,
                  description="orthogonal position encoding (OPE-SR), no parameters",
                  encoders=("edsr-baseline", "edsr", "rdn"),
                  encoder_args={"edsr-baseline": {"mid_channels": OPE_CHANNELS},
                                "edsr": {"mid_channels": OPE_CHANNELS},
                                "rdn": {"mid_channels": OPE_CHANNELS}})
class OPEDecoder(Decoder):
    liif_name = "ope-net"

    @classmethod
    def official_args(cls, sd: dict, spec_args: dict | None = None) -> dict | None:
        """Only from the official spec (``OPE-net``, whose ``max_freq`` it reads): the decoder
        has no keys of its own; the ``OPE-net-adapt`` variant's are refused."""
        if sd or not spec_args or "max_freq" not in spec_args:
            if any(k.startswith("adapt_") for k in sd):
                raise CiaosrError("OPE-net-adapt checkpoint: not supported (the official configurations "
                                  "use OPE-net)")
            return None
        return {"max_freq": int(spec_args["max_freq"])}

    def __init__(self, in_dim: int, max_freq: int = MAX_FREQ, omega: float = 0.5 * math.pi):
        super().__init__(in_dim)
        side = 2 * max_freq + 1
        if in_dim != 3 * side * side:
            raise ValueError(f"OPE with max_freq {max_freq} reads 3 x {side}^2 = {3 * side * side} encoder "
                             f"channels, the encoder gives {in_dim}")
        self.max_freq, self.omega = max_freq, omega

    def prepare(self, feat: Tensor) -> dict:
        b, c, h, w = feat.shape
        return self.from_tables({"table": feat.permute(0, 2, 3, 1).reshape(b, h * w, c)}, (h, w))

    def tables(self, prep: dict) -> dict[str, Tensor]:
        return pixel_tables(prep, ("table",))

    def from_tables(self, tables: dict[str, Tensor], size: tuple[int, int]) -> dict:
        return from_pixel_tables(tables, size)

    def query(self, prep: dict, coord: Tensor, cell: Tensor) -> Tensor:
        b, nq = coord.shape[:2]
        side = 2 * self.max_freq + 1
        rows, rel = lookup_neighbours(prep, coord, True)  # (B*Q*4,), (B, Q, 4, 2)
        coef = prep["table"].index_select(0, rows).view(-1, 3, side, side)
        rel = rel.reshape(-1, 2).to(coef.dtype)
        x_basis = ope_basis(rel[:, 0], self.max_freq, self.omega)  # rows
        y_basis = ope_basis(rel[:, 1], self.max_freq, self.omega)  # columns
        pred = ((coef @ y_basis.view(-1, 1, side, 1)).squeeze(-1) * x_basis.unsqueeze(1)).sum(-1)
        weights = area_weights([r for r in rel.view(b, nq, 4, 2).unbind(2)])
        return (pred.view(b, nq, 4, 3) * weights.unsqueeze(-1)).sum(2)

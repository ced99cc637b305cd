"""RDN feature trunk (Residual Dense Network, Zhang et al. 2018) without upsampler.

Parameter names follow the mmediting-0.11 ``RDN`` backbone as CiaoSR's
``LocalImplicitSRRDN`` re-exposes it at generator level, so the encoder part of an
official CiaoSR-RDN ``state_dict`` (every key except ``imnet_*`` and ``cs_attn.*``)
loads into :class:`RDN` with ``strict=True``:

* ``sfe1``                      conv3x3 in -> mid
* ``sfe2``                      conv3x3 mid -> mid
* ``rdbs.{i}.layers.{j}.conv``  conv3x3 (c0 + j*growth) -> growth, then ReLU; the
                                output is concatenated to the layer input
* ``rdbs.{i}.lff``              conv1x1 (c0 + num_layers*growth) -> growth
* ``gff.0``                     conv1x1 (num_blocks*growth) -> mid
* ``gff.1``                     conv3x3 mid -> mid

Forward: ``sfe1 -> sfe2 -> RDB x num_blocks`` (each ``x + lff(dense(x))``), then the
global fusion of all block outputs plus the ``sfe1`` output. The input is used as is
(CiaoSR subtracts the RGB mean before calling the encoder).
"""

from __future__ import annotations

import re

import torch
from torch import nn

from ciaosr.errors import CiaosrError

from ..models.registry import register_encoder
from .keys import rename_keys

__all__ = ["RDN", "args_from_state_dict"]


class _DenseLayer(nn.Module):
    """``cat[x, ReLU(conv3x3(x))]``: grows the channel count by ``growth``."""

    def __init__(self, in_channels: int, growth: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, growth, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, torch.relu(self.conv(x))], dim=1)


class _RDB(nn.Module):
    """Residual dense block: dense layers, 1x1 local feature fusion back to the block's
    width, residual."""

    def __init__(self, in_channels: int, growth: int, num_layers: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            *[_DenseLayer(in_channels + growth * j, growth) for j in range(num_layers)]
        )
        self.lff = nn.Conv2d(in_channels + growth * num_layers, in_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.lff(self.layers(x))


@register_encoder("rdn", description="RDN: 16 residual dense blocks x 8 layers, 64 channels")
class RDN(nn.Module):
    """RDN trunk without the upsampling tail; output has ``mid_channels`` channels.

    Args:
        in_channels: input image channels.
        mid_channels: width of the shallow features and of the output.
        num_blocks: number of residual dense blocks.
        num_layers: dense layers per block.
        channel_growth: channels added by each dense layer (the RDN paper's G; the width
            ``mid_channels`` is its G0). Equal in the published RDN (64) and in
            mmediting's, which requires it; OPE-SR's RDN has G0 = 147 and G = 64, as the
            LIIF code base's RDN allows.
    """

    def __init__(
        self,
        in_channels: int = 3,
        mid_channels: int = 64,
        num_blocks: int = 16,
        num_layers: int = 8,
        channel_growth: int = 64,
    ) -> None:
        super().__init__()
        if num_blocks < 1 or num_layers < 1:
            raise ValueError("RDN needs num_blocks >= 1 and num_layers >= 1")
        self.in_channels = in_channels
        self.mid_channels = mid_channels
        self.num_blocks = num_blocks
        self.num_layers = num_layers
        self.channel_growth = channel_growth
        self.out_dim = mid_channels

        self.sfe1 = nn.Conv2d(in_channels, mid_channels, 3, padding=1)
        self.sfe2 = nn.Conv2d(mid_channels, mid_channels, 3, padding=1)
        self.rdbs = nn.ModuleList(
            [
                _RDB(mid_channels, channel_growth, num_layers)
                for i in range(num_blocks)
            ]
        )
        self.gff = nn.Sequential(
            nn.Conv2d(mid_channels * num_blocks, mid_channels, 1),
            nn.Conv2d(mid_channels, mid_channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) -> (B, mid_channels, H, W)."""
        shallow = self.sfe1(x)
        x = self.sfe2(shallow)
        block_outputs = []
        for block in self.rdbs:
            x = block(x)
            block_outputs.append(x)
        return self.gff(torch.cat(block_outputs, dim=1)) + shallow

    # --- official checkpoints ------------------------------------------------------
    @staticmethod
    def from_liif_keys(sd: dict) -> dict:
        """LIIF's RDN names (SFENet, RDBs.i.convs.j.conv.0, LFF, GFF) -> the mmediting
        names; other state dicts unchanged."""
        if "SFENet1.weight" not in sd:
            return sd
        return rename_keys(sd, [(r"^SFENet1\.", "sfe1."), (r"^SFENet2\.", "sfe2."),
                                (r"^RDBs\.(\d+)\.convs\.(\d+)\.conv\.0\.", r"rdbs.\1.layers.\2.conv."),
                                (r"^RDBs\.(\d+)\.LFF\.", r"rdbs.\1.lff."), (r"^GFF\.", "gff.")],
                           drop=("UPNet.", "sub_mean.", "add_mean."))

    @staticmethod
    def detect(sd: dict, spec_args: dict | None = None) -> tuple[str, dict] | None:
        """("rdn", constructor args) of a trunk state dict in our layout, or None."""
        return ("rdn", args_from_state_dict(sd)) if "sfe1.weight" in sd else None


_RDB_LAYER = re.compile(r"^rdbs\.(\d+)\.layers\.(\d+)\.conv\.weight$")


def args_from_state_dict(sd: dict[str, torch.Tensor]) -> dict:
    """Constructor kwargs of :class:`RDN` from a generator-level state dict.

    ``sd`` has no prefix (keys such as ``sfe1.weight``, ``rdbs.0.layers.0.conv.weight``);
    decoder keys may be present and are ignored.
    """
    try:
        sfe1 = sd["sfe1.weight"]
    except KeyError:
        raise CiaosrError(
            "not an RDN state dict: no 'sfe1.weight' key (strip any 'generator.' prefix first)"
        ) from None
    blocks: set[int] = set()
    layers_in_block0: set[int] = set()
    for key in sd:
        m = _RDB_LAYER.match(key)
        if m:
            blocks.add(int(m.group(1)))
            if m.group(1) == "0":
                layers_in_block0.add(int(m.group(2)))
    if not blocks:
        raise CiaosrError("not an RDN state dict: no 'rdbs.<i>.layers.<j>.conv.weight' keys")
    return {
        "in_channels": int(sfe1.shape[1]),
        "mid_channels": int(sfe1.shape[0]),
        "num_blocks": max(blocks) + 1,
        "num_layers": max(layers_in_block0) + 1,
        "channel_growth": int(sd["rdbs.0.layers.0.conv.weight"].shape[0]),
    }

"""How much memory a model needs: the peak bytes of encoding a tile and the bytes per
decoded query, estimated from its units (``inference.tiling`` sizes tiles and chunks by
them; an exported ONNX pair carries them as numbers in its metadata, ``ciaosr.onnx``)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class TileMemory:
    """A model's memory estimates as numbers, for a model that has no torch modules to
    read them from (an exported ONNX pair carries them in its metadata,
    ``ciaosr.onnx``): peak bytes of encoding a tile of ``p`` LR pixels,
    ``fixed + per_pixel * p``, and bytes per decoded query."""

    fixed: int
    per_pixel: int
    per_query: int

    @classmethod
    def of(cls, model: nn.Module) -> "TileMemory":
        """The estimates of :func:`encode_bytes` (affine in the pixels: every decoder's
        ``prepare_bytes`` is) and :func:`query_bytes` for a torch model."""
        fixed = encode_bytes(model, 0)
        return cls(fixed, encode_bytes(model, 1) - fixed, query_bytes(model))


def encode_bytes(model: nn.Module, tile: int) -> int:
    """Estimated peak bytes of ``model.encode`` on one tile x tile fp32 input.

    Per pixel: a few maps of the widest encoder layer and ``activation_maps`` (an
    encoder's declared count, else 1) C-channel maps, plus what the decoder's
    ``prepare`` declares (by default the 3x3-unfolded features and similar maps, 19 C;
    LIIF its first-layer table; CiaoSR adds its tables and non-local attention).
    Deliberately on the high side: measured peaks at 192 to 528 pixels were 0.37x
    (EDSR-baseline LIIF), 0.75x (CiaoSR) and 0.87x (SwinIR LIIF) of it.
    """
    memory = getattr(model, "tile_memory", None)  # a model without torch modules
    if memory is not None:
        return memory.fixed + memory.per_pixel * tile * tile
    trunk = model.encoder
    widest = max([m.in_channels + m.out_channels for m in trunk.modules() if isinstance(m, nn.Conv2d)]
                 + [m.in_features + m.out_features for m in trunk.modules() if isinstance(m, nn.Linear)]
                 + [0])
    per_px = 4 * (3 * min(widest, 4096) + getattr(trunk, "activation_maps", 1) * trunk.out_dim)
    px = tile * tile
    return per_px * px + model.decoder.prepare_bytes(px)


def query_bytes(model: nn.Module) -> int:
    """Estimated bytes per decoded query: the gathered neighbour features and the MLP
    activations for the 4 neighbours (measured: ~12 KB for LIIF, ~30 KB for CiaoSR)."""
    memory = getattr(model, "tile_memory", None)  # a model without torch modules
    if memory is not None:
        return memory.per_query
    widest_in = max([m.in_features for m in model.modules() if isinstance(m, nn.Linear)]
                    + [9 * model.encoder.out_dim])
    return 4 * 14 * widest_in


__all__ = ["TileMemory", "encode_bytes", "query_bytes"]

"""Benchmark evaluation under the LIIF and mmediting protocols (see docs/evaluation.md)."""

from .protocol import METRICS, PROTOCOLS, Protocol, is_rgb_dataset
from .runner import BicubicModel, evaluate, format_table, parse_steps, super_resolve, tiled_upsample

__all__ = [
    "METRICS", "PROTOCOLS", "Protocol", "is_rgb_dataset", "BicubicModel", "evaluate",
    "format_table", "parse_steps", "super_resolve", "tiled_upsample",
]

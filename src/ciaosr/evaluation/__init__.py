"""Benchmark evaluation under the LIIF and mmediting protocols (see docs/evaluation.md)."""

from ..data.sets.catalog import find_eval_set, is_rgb_dataset
from .protocol import METRICS, PROTOCOLS, Protocol
from .bicubic import BicubicModel
from .mmedit_tiling import tiled_upsample
from .report import format_table
from .runner import evaluate, evaluate_folder, parse_steps, super_resolve

__all__ = [
    "find_eval_set", "METRICS", "PROTOCOLS", "Protocol", "is_rgb_dataset", "BicubicModel", "evaluate",
    "evaluate_folder", "format_table", "parse_steps", "super_resolve", "tiled_upsample",
]

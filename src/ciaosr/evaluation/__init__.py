"""Benchmark evaluation under the LIIF and mmediting protocols (see docs/evaluation.md).

The names below are imported on first use (``ciaosr.lazy``): the command line reads
``metric_set``'s metric names without importing torch."""

from ..lazy import lazy_exports

__all__ = [
    "find_eval_set", "METRICS", "PROTOCOLS", "Protocol", "is_rgb_dataset", "BicubicModel", "evaluate",
    "evaluate_folder", "format_table", "parse_steps", "super_resolve", "tiled_upsample",
]

__getattr__, __dir__ = lazy_exports(__name__, {
    "find_eval_set": "..data.sets.catalog", "is_rgb_dataset": "..data.sets.catalog",
    "METRICS": ".protocol", "PROTOCOLS": ".protocol", "Protocol": ".protocol",
    "BicubicModel": ".bicubic", "tiled_upsample": ".mmedit_tiling", "format_table": ".report",
    "evaluate": ".runner", "evaluate_folder": ".runner", "parse_steps": ".runner", "super_resolve": ".runner",
})

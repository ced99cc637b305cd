"""The CiaoSR paper's tables: the published numbers (package data) and ``ciaosr eval
--table``, which runs a table for given models and prints ours beside the paper's.

The names below are imported on first use (``ciaosr.lazy``): the command line reads
``published.TABLES`` without importing torch."""

from ..lazy import lazy_exports

__all__ = ["TABLES", "PublishedTable", "load_table", "source", "format_markdown", "run_table"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "TABLES": ".published", "PublishedTable": ".published", "load_table": ".published", "source": ".published",
    "format_markdown": ".report", "run_table": ".run",
})

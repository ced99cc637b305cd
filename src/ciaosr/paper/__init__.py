"""The CiaoSR paper's tables: the published numbers (package data) and ``ciaosr eval
--table``, which runs a table for given models and prints ours beside the paper's."""

from .published import TABLES, PublishedTable, load_table, source
from .report import format_markdown
from .run import run_table

__all__ = ["TABLES", "PublishedTable", "load_table", "source", "format_markdown", "run_table"]

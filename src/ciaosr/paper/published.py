"""The CiaoSR paper's published numbers (Tables 1, 2, 3, 6 and 8), shipped as package data.

``published.json`` holds each table's title, metrics, datasets, scales, (Table 6) the
multi-step variants, and its rows: the printed name, the project's model name when the
row is an arbitrary-scale model of this project (``None`` for a fixed-scale network) and
the printed cells; a cell the transcription marks ``(sic)`` (printed so, most likely a
misprint) carries ``"note": "sic"``. Its ``source`` names the paper, where the numbers
were transcribed, and (``marks``) what each such note means.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from ..errors import CiaosrError

TABLES = (1, 2, 3, 6, 8)


@dataclass(frozen=True)
class Variant:
    label: str  # "" for a table without variants
    steps: tuple[float, ...] | None  # multi-step synthesis (``ciaosr eval --steps``); None: one step


@dataclass(frozen=True)
class Row:
    name: str  # as printed
    model: str | None  # the project's model name, or None
    why_no_model: str | None
    cells: dict  # (dataset, scale, steps) -> {metric: value, "note"?}


@dataclass(frozen=True)
class PublishedTable:
    number: int
    title: str
    metrics: tuple[str, ...]
    channel: str
    datasets: tuple[str, ...]
    scales: tuple[int, ...]
    variants: tuple[Variant, ...]
    rows: tuple[Row, ...]

    def row_for(self, model_name: str) -> Row | None:
        """The row of the project's model ``model_name`` (e.g. ``rdn-ciaosr``), or None."""
        for row in self.rows:
            if row.model == model_name:
                return row
        return None

    def published(self, row: Row, dataset: str, scale: float, steps) -> dict | None:
        return row.cells.get((dataset, float(scale), _steps_key(steps)))

    def model_rows(self) -> list[str]:
        return [r.model for r in self.rows if r.model]


def _steps_key(steps) -> tuple[float, ...] | None:
    return tuple(float(s) for s in steps) if steps else None


@lru_cache(maxsize=1)
def _data() -> dict:
    return json.loads(resources.files(__package__).joinpath("published.json").read_text())


def source() -> dict:
    """The paper and where the numbers come from."""
    return dict(_data()["source"])


def load_table(number: int | str) -> PublishedTable:
    try:
        n = int(number)
    except (TypeError, ValueError):
        n = None
    if n not in TABLES:
        raise CiaosrError(f"no published Table {number} (tables: {', '.join(map(str, TABLES))})")
    t = _data()["tables"][str(n)]
    rows = []
    for r in t["rows"]:
        cells = {}
        for c in r["cells"]:
            key = (c["dataset"], float(c["scale"]), _steps_key(c.get("steps")))
            cells[key] = {k: v for k, v in c.items() if k not in ("dataset", "scale", "steps")}
        rows.append(Row(r["row"], r["model"], r.get("why_no_model"), cells))
    variants = tuple(Variant(v["label"], _steps_key(v["steps"])) for v in t.get("variants", [])) \
        or (Variant("", None),)
    return PublishedTable(n, t["title"], tuple(t["metrics"]), t["channel"], tuple(t["datasets"]),
                          tuple(t["scales"]), variants, tuple(rows))

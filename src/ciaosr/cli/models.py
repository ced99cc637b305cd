"""``ciaosr models``: every model name, its size, and which ones have shipped weights."""

from __future__ import annotations

import json

from ..models.factory import default_parameter_count
from ..models.pretrained import DEFAULT_MODEL, PRETRAINED, shipped
from ..models.registry import list_models, split_name
from .command import Command


def arguments(p) -> None:
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")


def model_table() -> list[dict]:
    rows = []
    for name in list_models():
        enc, dec = split_name(name)
        entry = shipped(name)
        rows.append({
            "name": name,
            "encoder": enc.name,
            "decoder": dec.name,
            "params": default_parameter_count(name),
            "weights": entry is not None,
            "default": name == DEFAULT_MODEL,
            "trained_on": entry.trained_on if entry else None,
        })
    return rows


def run(args) -> int:
    rows = model_table()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["name"]) for r in rows)
    print(f"{'model':<{width}}  {'params':>12}  weights  default")
    for r in rows:
        mark = "yes" if r["weights"] else "-"
        default = "*" if r["default"] else ""
        print(f"{r['name']:<{width}}  {r['params']:>12,}  {mark:<7}  {default}")
    for name in PRETRAINED:
        entry = shipped(name)
        if entry:
            print(f"\n{name}: trained on {entry.trained_on}.\n  {entry.source}. Licence: {entry.licence}.")
    print(f"\ndefault model: {DEFAULT_MODEL}")
    return 0


COMMAND = Command(
    "models", help="list the models, their parameter counts and shipped weights",
    description="List every <encoder>-<decoder> model with its parameter count, whether "
                "weights ship inside the package, and the default model.",
    arguments=arguments, run=run)

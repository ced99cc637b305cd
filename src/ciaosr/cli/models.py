"""``ciaosr models``: every model name, its size, and which ones have shipped weights.

The names and parameter counts need the registry, and so torch, whose import alone takes
seconds; the table is therefore kept in the per-user cache (``ciaosr.cache``, folder
``models``) under a key of what it is made from: the versions of ciaosr and torch, the
model-defining sources (every ``.py`` of ``models``, ``encoders`` and ``decoders``) and
the shipped weight files. A run that finds its key prints without importing torch; any
other run (no entry, or one that cannot be read) makes the table and stores it, or just
prints it where the cache cannot be written.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..models.pretrained import DEFAULT_MODEL, PRETRAINED, shipped
from .command import Command

#: The package's folders whose sources define the models, hence the table.
MODEL_SOURCES = ("models", "encoders", "decoders")
#: Each row's fields and their types (a cached row with others is not used).
ROW_FIELDS = {"name": str, "encoder": str, "decoder": str, "params": int, "weights": bool, "default": bool,
              "trained_on": (str, type(None))}


def arguments(p) -> None:
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")


def model_table() -> list[dict]:
    """One row per model (``ROW_FIELDS``), made from the registry (imports torch)."""
    from ..models.factory import default_parameter_count
    from ..models.registry import list_models, split_name

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


def table_key() -> str:
    """The cache key of the table: a digest of everything it is made from, read without
    importing torch (torch's version from its installed metadata)."""
    from .. import __version__
    from .main import torch_version

    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256(f"{__version__}|{torch_version()}|".encode())
    for path in sorted(p for folder in MODEL_SOURCES for p in (package / folder).rglob("*.py")):
        digest.update(f"{path.relative_to(package).as_posix()}|{path.stat().st_size}|".encode())
        digest.update(path.read_bytes())
    digest.update("|".join(name for name in PRETRAINED if shipped(name)).encode())
    return digest.hexdigest()[:16]


def _table_file() -> Path:
    from ..cache import cache_folder

    return cache_folder("models") / f"table-{table_key()}.json"


def _valid(rows) -> bool:
    return isinstance(rows, list) and bool(rows) and all(
        isinstance(row, dict) and row.keys() == ROW_FIELDS.keys()
        and all(isinstance(row[k], t) and not (t is int and isinstance(row[k], bool)) for k, t in ROW_FIELDS.items())
        for row in rows)


def cached_model_table() -> list[dict]:
    """``model_table()``, from the cache where it holds this key's table; else made and
    stored (silently not stored where the cache cannot be written)."""
    from ..atomic import write_atomic
    from ..errors import CiaosrError

    path = _table_file()
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        rows = None
    if _valid(rows):
        return rows
    rows = model_table()
    text = json.dumps(rows)
    try:
        write_atomic(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"), overwrite=True,
                     make_parents=True)
    except CiaosrError:  # a cache that cannot be written: the table is printed all the same
        pass
    return rows


def run(args) -> int:
    rows = cached_model_table()
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

"""Exported pairs made on the fly, kept in a cache folder so each model exports once.

``$XDG_CACHE_HOME/ciaosr/onnx`` (``~/.cache/ciaosr/onnx`` when unset), one folder per
model name and weights (``<name>-<digest>``): the digest covers the weights, the
constructor arguments and the versions of ciaosr and torch that export, so new weights
or a new exporter make a new entry. A folder appears whole (exported beside it, then
renamed), so a stopped export leaves no half-written entry and two processes that export
at once both end up with a complete one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from .. import __version__
from .export import export_onnx, weights_digest

FILE = "model.onnx"


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ciaosr" / "onnx"


def cache_key(model) -> str:
    spec = json.dumps(model.spec or {}, sort_keys=True)
    text = f"{weights_digest(model)}|{spec}|{__version__}|{torch.__version__}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached_export(model, quiet: bool = False) -> Path:
    """The encode graph of ``model``'s exported pair in the cache, exported first if needed."""
    name = (model.spec or {}).get("name", "model")
    entry = cache_root() / f"{name}-{cache_key(model)}"
    if (entry / FILE).is_file():
        return entry / FILE
    entry.parent.mkdir(parents=True, exist_ok=True)
    if not quiet:
        print(f"exporting {name} to ONNX once (kept in {entry})", file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        export_onnx(model, work / FILE)
        try:
            os.replace(work, entry)
        except OSError:  # another process put it there first: use theirs
            if not (entry / FILE).is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return entry / FILE


__all__ = ["cached_export", "cache_root", "cache_key"]

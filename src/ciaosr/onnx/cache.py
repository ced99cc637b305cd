"""Exported pairs made on the fly, kept in a cache folder so each model exports once.

``$XDG_CACHE_HOME/ciaosr/onnx`` (``~/.cache/ciaosr/onnx`` when unset; ``ciaosr.cache``),
one folder per model name and weights (``<name>-<digest>``): the digest covers the weights, the
constructor arguments and the versions of ciaosr and torch that export, so new weights
or a new exporter make a new entry. A folder appears whole (exported in a staging folder
beside it, then published: ``ciaosr.atomic``), so a stopped export leaves no half-written
entry and two processes that export at once both end up with a complete one.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch

from .. import __version__
from ..atomic import AlreadyExists, make_output_folders, publish, staging_folder
from ..cache import cache_folder
from ..errors import CiaosrError
from .export import export_onnx, weights_digest

FILE = "model.onnx"


def cache_root() -> Path:
    return cache_folder("onnx")


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
    if not quiet:
        print(f"exporting {name} to ONNX once (kept in {entry})", file=sys.stderr)
    make_output_folders([entry.parent])
    with staging_folder(entry.parent, f".{entry.name}.") as work:
        export_onnx(model, work / FILE)
        try:
            publish(work, entry)
        except AlreadyExists:  # another process published it first: use theirs (whole, as ours)
            if not (entry / FILE).is_file():
                raise CiaosrError(f"{entry}: a cache entry without its {FILE}; remove the folder to export "
                                  f"again") from None
    return entry / FILE


__all__ = ["cached_export", "cache_root", "cache_key"]

"""The package's per-user cache: ``$XDG_CACHE_HOME/ciaosr`` (``~/.cache/ciaosr`` when
unset), one folder per kind of entry (``onnx``: exported models; ``models``: the table of
``ciaosr models``). Everything in it can be deleted; it is made again when needed.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_folder(kind: str) -> Path:
    """The cache's folder for ``kind`` (not created here)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ciaosr" / kind


__all__ = ["cache_folder"]

"""The manifest ``ciaosr data prepare`` writes in each set folder (``MANIFEST.json``):
every file under the folder with its size and SHA-256, what made the folder and when.
``verify`` checks the files against it."""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path

from ... import __version__
from ...atomic import write_atomic
from .download import file_digest

MANIFEST = "MANIFEST.json"


def write_manifest(folder: Path, dataset: str, made: dict[str, str], source: str) -> Path:
    """Hash every file under ``folder`` (but the manifest) into ``folder/MANIFEST.json``.
    ``made``: sub-folder -> how it was made (``"downloaded"``, ``"MATLAB bicubic x2 of HR"``)."""
    files = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST
                       and not any(part.startswith(".") for part in p.relative_to(folder).parts)):
        rel = path.relative_to(folder).as_posix()
        sub = rel.rsplit("/", 1)[0] if "/" in rel else ""
        files.append({"path": rel, "bytes": path.stat().st_size, "sha256": file_digest(path, "sha256"),
                      "made": made.get(sub, "copied or downloaded")})
    doc = {"dataset": dataset, "folder": folder.name, "source": source,
           "made_by": f"ciaosr {__version__} data prepare",
           "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "folders": made, "files": files}
    text = json.dumps(doc, indent=1) + "\n"

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    return write_atomic(folder / MANIFEST, write, overwrite=True)


def check_manifest(folder: Path) -> list[str] | None:
    """Problems of ``folder``'s files against its manifest (None when it has none)."""
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        entries = doc["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [f"{path}: unreadable manifest ({exc})"]
    problems = []
    for e in entries:
        p = folder / e["path"]
        if not p.is_file():
            problems.append(f"{folder.name}/{e['path']}: listed in {MANIFEST}, missing")
        elif os.path.getsize(p) != e["bytes"]:
            problems.append(f"{folder.name}/{e['path']}: {os.path.getsize(p)} bytes, {MANIFEST} says {e['bytes']}")
        elif file_digest(p, "sha256") != e["sha256"]:
            problems.append(f"{folder.name}/{e['path']}: SHA-256 differs from {MANIFEST}")
    return problems


__all__ = ["MANIFEST", "check_manifest", "write_manifest"]

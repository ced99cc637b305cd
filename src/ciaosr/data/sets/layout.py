"""What a set's folders hold under the data root, which expected images are missing,
and where a test set's folder is (``resolve_dataset``).

Names are compared ignoring case and anything but letters and digits, so
``UchiNoNyansDiary.png`` counts as Manga109's ``UchiNoNyan'sDiary``.
"""

from __future__ import annotations

import re
from pathlib import Path

from ...errors import CiaosrError
from ...imageio import list_images
from .catalog import DataSet, Folder, eval_set_names, find_eval_set, known_files, manga109_titles


def name_key(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", Path(name).stem.lower())


def expected_names(folder: Folder) -> tuple[str, ...] | None:
    """The image names the folder should hold, where known: the catalog's rule, the
    Manga109 titles, or the names of the known public copy when it has the full count."""
    if folder.names:
        return folder.names
    if folder.path == "Manga109/HR":
        return manga109_titles()
    prefix = folder.path + "/"
    names = tuple(sorted(p[len(prefix):] for p in known_files() if p.startswith(prefix) and "/" not in p[len(prefix):]))
    return names if len(names) == folder.count else None


def images_in(path: Path) -> list[Path]:
    return list_images(path) if path.is_dir() else []


def missing_names(folder: Folder, files: list[Path]) -> list[str] | None:
    """Expected names with no file (any image extension), or None when names are unknown."""
    names = expected_names(folder)
    if names is None:
        return None
    have = {name_key(p.name) for p in files}
    return [n for n in names if name_key(n) not in have]


def names_are_rule(folder: Folder) -> bool:
    """Whether the folder's names are the set's own (DIV2K's numbers, Manga109's titles,
    RealSRSet's files), rather than those of another public copy (the benchmark sets'),
    which only help say what a short folder lacks."""
    return folder.names is not None or folder.path == "Manga109/HR"


def describe_missing(folder: Folder, files: list[Path], first: int = 5) -> str:
    """'found 3 of 5 images (missing: a.png, b.png)' or '' when complete."""
    missing = missing_names(folder, files)
    if len(files) == folder.count and not (missing and names_are_rule(folder)):
        return ""
    text = f"found {len(files)} of {folder.count} images"
    if missing:
        more = f" and {len(missing) - first} more" if len(missing) > first else ""
        text += f" (missing: {', '.join(missing[:first])}{more})"
    return text


def is_complete(ds: DataSet, root: Path, under: tuple[str, ...] | None = None) -> bool:
    """Every folder of ``ds`` (or those under the given paths) holds its images."""
    for f in ds.folders:
        if under is not None and not any(f.path == u or f.path.startswith(u.rstrip("/") + "/") for u in under):
            continue
        if describe_missing(f, images_in(root / f.path)):
            return False
    return True


def _is_set_folder(d: Path) -> bool:
    return (d / "HR").is_dir() or (d / "GTmod12").is_dir()


def resolve_dataset(root: Path, name: str) -> Path:
    """The folder of test set ``name`` under ``root``: the name itself, then the known
    set's other folder names, each as spelled and then in any case; a folder holding
    ``HR/`` (or ``GTmod12/``) comes before one that does not. An unknown name is a
    one-line error listing the known sets and the set folders found under ``root``."""
    root = Path(root)
    es = find_eval_set(name)
    candidates = list(dict.fromkeys([name, *(es.folders if es else ())]))
    folders = [p for p in root.iterdir() if p.is_dir()]
    lowered = {p.name.lower(): p for p in folders}
    matches = [d for cand in candidates for d in (root / cand, lowered.get(cand.lower())) if d is not None and d.is_dir()]
    for d in sorted(matches, key=lambda d: not _is_set_folder(d)):  # stable: the candidates' order otherwise
        return d
    found = sorted(p.name for p in folders if _is_set_folder(p))
    hint = f"; set folders under it: {', '.join(found)}" if found else ""
    if es is None:
        raise CiaosrError(f"unknown dataset '{name}': no folder {root / name} (known sets: {eval_set_names()}{hint})")
    raise CiaosrError(f"dataset {es.name} not found under {root} (looked for {', '.join(candidates)}{hint})")


__all__ = ["describe_missing", "expected_names", "images_in", "is_complete", "missing_names", "name_key",
           "resolve_dataset"]

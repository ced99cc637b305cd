"""``ciaosr data verify``: is a set complete and intact under the data root?

Per folder of the set: the number of images (naming the first missing ones where the
names are known), that every image decodes whole, the image size of every file the
known-files table lists, and its SHA-256. A hash that differs from the very copy the set
is downloaded from is a problem; one that differs from another public copy is a note
(the same pixels may be stored in other bytes; the image size is still checked). Where
``prepare`` wrote a ``MANIFEST.json``, every file it lists is checked too (size, SHA-256).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from .catalog import DataSet, known_files
from .download import file_digest
from .layout import describe_missing, images_in
from .manifest import check_manifest


@dataclass
class Report:
    dataset: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    folders: dict[str, int] = field(default_factory=dict)  # images found per folder
    hashed: int = 0  # files checked against a known SHA-256

    @property
    def ok(self) -> bool:
        return not self.problems


def _open_whole(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        im.load()  # decodes every byte: a truncated file fails here
        return im.size


def verify(ds: DataSet, root: str | Path, progress: bool | None = None) -> Report:
    from tqdm.auto import tqdm

    root = Path(root)
    rep = Report(ds.name)
    known = known_files()
    other_copy: dict[str, int] = {}
    for folder in ds.folders:
        path = root / folder.path
        if not path.is_dir():
            rep.problems.append(f"{folder.path}: missing folder")
            rep.folders[folder.path] = 0
            continue
        files = images_in(path)
        rep.folders[folder.path] = len(files)
        gap = describe_missing(folder, files)
        if gap:
            rep.problems.append(f"{folder.path}: {gap}")
        for p in tqdm(files, desc=f"verify {folder.path}", unit="img", leave=False,
                      disable=(not progress) if progress is not None else None):
            rel = f"{folder.path}/{p.name}"
            try:
                size = _open_whole(p)
            except Exception as exc:  # PIL raises many kinds for a damaged file
                rep.problems.append(f"{rel}: does not open as an image ({exc.__class__.__name__}: {exc})")
                continue
            k = known.get(rel)
            if k is None:
                continue
            if size != (k.width, k.height):
                rep.problems.append(f"{rel}: {size[0]}x{size[1]} pixels, expected {k.width}x{k.height}")
                continue
            rep.hashed += 1
            if file_digest(p, "sha256") != k.sha256:
                if k.same_source(ds):
                    rep.problems.append(f"{rel}: SHA-256 differs from the source's ({k.origin})")
                else:
                    other_copy[k.origin] = other_copy.get(k.origin, 0) + 1
    for origin, n in other_copy.items():
        rep.notes.append(f"{n} file(s) differ in bytes from the public copy in {origin} "
                         "(their image sizes match; other encoders store the same pixels differently)")
    for top in ds.set_folders:
        problems = check_manifest(root / top)
        if problems is None:
            continue
        rep.problems.extend(problems)
    return rep


__all__ = ["Report", "verify"]

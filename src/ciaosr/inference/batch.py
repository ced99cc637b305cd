"""Which files a ``ciaosr upscale`` run reads and which it writes: the batch plan.

Inputs are image files, folders (their images; with ``recursive`` the whole tree) or
``-`` (stdin). Each input becomes a :class:`Job` with its output path, named by one
rule, :class:`Naming`:

- ``<stem><suffix><ext>``; the suffix defaults to ``_x<scale>`` (``_<W>x<H>`` for a
  size, each output's own where one side keeps the aspect ratio: ``--size 1920x``
  names ``_1920x1080``), the extension follows the input (``.png`` for inputs no
  writer takes, e.g. ``.ppm``) unless ``--ext`` names one.
- Inputs whose outputs would share a name and that differ only in their extension
  (``photo.jpg`` and ``photo.png`` with ``--ext png``) all get their source extension
  in the output stem: ``photo_jpg_x4.png`` and ``photo_png_x4.png``. Outputs that
  still collide (two folders' ``a.png`` into one ``-o`` folder) are refused after the
  first, each with its reason.
- Outputs never replace an input of the run, even with ``--overwrite``.
- Folder inputs never take this run's own outputs back in: files whose name follows
  the rule (stem ending in the suffix, a writable extension) are skipped with that
  reason, and so is the output folder when it lies inside an input tree.
- With ``recursive``, the tree is mirrored below the output folder (or outputs go next
  to their inputs). Without it, subfolders are reported as skipped.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CiaosrError
from ..geometry import Resize
from ..imageio import IMAGE_EXTENSIONS, WRITE_FORMATS, image_size, list_images
from ..imageio.writing import SIXTEEN_BIT_FORMATS

#: The name of the standard streams, as an input or an output.
STREAM = "-"
#: The extension of outputs whose input's extension no writer takes (and of stdin).
FALLBACK_EXT = ".png"


@dataclass(frozen=True)
class Naming:
    """The output naming rule of one run."""

    suffix: str  # e.g. "_x4"
    ext: str | None = None  # ".png", or None: follow the input
    #: The size the default suffix names when it keeps the aspect ratio (``--size
    #: 1920x``): each output's suffix is then its own size in full, ``_1920x1080``,
    #: from its input's header.
    size: Resize | None = None

    @classmethod
    def of(cls, resize: Resize, suffix: str | None = None, ext: str | None = None) -> "Naming":
        """The rule of a run that resizes by ``resize``: ``suffix``, else the default
        ``_<label>``."""
        if suffix is not None:
            return cls(suffix, ext)
        return cls(f"_{resize.label}", ext, resize if resize.keeps_aspect else None)

    def extension(self, src: Path) -> str:
        if self.ext is not None:
            return self.ext
        return src.suffix if src.suffix.lower() in WRITE_FORMATS else FALLBACK_EXT

    def suffix_of(self, src: Path) -> str:
        """The suffix of ``src``'s output."""
        if self.size is None:
            return self.suffix
        try:
            return f"_{self.size.for_input(image_size(src, upright=True)).label}"
        except CiaosrError:  # unreadable: the job fails when it is run
            return self.suffix

    def name(self, src: Path, with_source_ext: bool = False) -> str:
        stem = f"{src.stem}_{src.suffix.lstrip('.').lower()}" if with_source_ext and src.suffix else src.stem
        return f"{stem}{self.suffix_of(src)}{self.extension(src)}"

    def _size_suffix(self, any_width: str, any_height: str) -> str:
        """The suffix of ``size`` with the side that follows each input written so."""
        h, w = self.size.size
        return f"_{any_width if w is None else w}x{any_height if h is None else h}"

    @property
    def shown(self) -> str:
        """The suffix as the help writes it: ``_x4``, ``_1920x<H>``."""
        return self.suffix if self.size is None else self._size_suffix("<W>", "<H>")

    def is_output(self, path: Path) -> bool:
        """Whether ``path`` is named like an output of this run."""
        if not self.suffix or path.suffix.lower() not in WRITE_FORMATS:
            return False
        if self.size is None:
            return path.stem.endswith(self.suffix)
        return re.search(self._size_suffix(r"\d+", r"\d+") + "$", path.stem) is not None


@dataclass(frozen=True)
class Job:
    src: Path  # Path("-"): stdin
    dst: Path  # Path("-"): stdout


@dataclass
class Plan:
    jobs: list[Job]
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (path, reason): not read
    refused: list[tuple[Path, str]] = field(default_factory=list)  # (path, reason): failures
    many: bool = False  # several inputs or a folder: bad files are reported, not fatal


def _is_stream(path: Path | str) -> bool:
    return str(path) == STREAM


def _looks_like_file_name(output: str) -> bool:
    out = Path(output)
    return (not output.endswith((os.sep, "/")) and not out.is_dir()
            and out.suffix.lower() in set(IMAGE_EXTENSIONS) | set(WRITE_FORMATS))


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def _walk(root: Path, recursive: bool, naming: Naming, out_dir: Path | None,
          skipped: list[tuple[Path, str]]) -> list[tuple[Path, Path]]:
    """(file, its folder relative to ``root``) of the images below ``root``."""
    found: list[tuple[Path, Path]] = []
    out_real = out_dir.resolve() if out_dir is not None else None
    folders = [root]
    while folders:
        folder = folders.pop(0)
        for path in list_images(folder):
            if naming.is_output(path):
                skipped.append((path, f"named like an output of this run (*{naming.shown}.*)"))
            else:
                found.append((path, folder.relative_to(root)))
        subs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        for sub in subs:
            if out_real is not None and sub.resolve() == out_real:
                continue  # this run's output folder
            if recursive:
                folders.append(sub)
            else:
                skipped.append((sub, "a subfolder (use --recursive to include subfolders)"))
    return found


def plan_batch(inputs: list[str], output: str | None, naming: Naming, recursive: bool = False) -> Plan:
    """The jobs of a run; usage errors (checked before any work) raise ``CiaosrError``."""
    if STREAM in inputs and len(inputs) > 1:
        raise CiaosrError("'-' (stdin) must be the only input")
    many = len(inputs) > 1 or any(Path(t).is_dir() for t in inputs if not _is_stream(t))
    if output is not None and _is_stream(output) and many:
        raise CiaosrError("-o - (stdout) takes one image; several inputs or a folder need an output folder")
    if output is not None and many and _looks_like_file_name(output):
        raise CiaosrError(f"-o {output}: several inputs or a folder need an output folder, not a file name "
                          f"(e.g. -o {Path(output).with_suffix('')}/)")
    if inputs == [STREAM] and (output is None or Path(output).is_dir() or output.endswith((os.sep, "/"))):
        raise CiaosrError("reading stdin ('-') needs -o FILE, or -o - for stdout")

    out_dir: Path | None = None
    out_file: Path | None = None
    if output is not None and not _is_stream(output):
        out = Path(output)
        if many or out.is_dir() or output.endswith((os.sep, "/")):
            if out.exists() and not out.is_dir():
                raise CiaosrError(f"{out}: exists and is not a folder (several inputs need an output folder)")
            out_dir = out
        else:
            out_file = out
    if out_file is not None and naming.ext is not None and out_file.suffix.lower() != naming.ext.lower():
        raise CiaosrError(f"-o {out_file} and --ext {naming.ext.lstrip('.')} name different formats; give one")

    skipped: list[tuple[Path, str]] = []
    sources: list[tuple[Path, Path, Path | None]] = []  # (file, relative folder, root folder)
    for text in inputs:
        p = Path(text)
        if p.is_dir() and not _is_stream(text):
            found = _walk(p, recursive, naming, out_dir, skipped)
            if not found and len(inputs) == 1 and not skipped:
                raise CiaosrError(f"{p}: no images in this folder ({', '.join(IMAGE_EXTENSIONS)})")
            sources.extend((f, rel, p) for f, rel in found)
        else:
            sources.append((p, Path("."), None))  # a missing file is reported when it is processed

    seen_src: set[Path] = set()
    unique = []
    for src, rel, root in sources:
        ident = src if _is_stream(src) else src.resolve()
        if ident not in seen_src:
            seen_src.add(ident)
            unique.append((src, rel, root))

    def folder_of(src: Path, rel: Path) -> Path:
        return out_dir / rel if out_dir is not None else src.parent

    def dst_of(src: Path, rel: Path, with_ext: bool) -> Path:
        if out_file is not None:
            return out_file
        if output is not None and _is_stream(output):
            return Path(STREAM)
        return folder_of(src, rel) / naming.name(src, with_ext)

    # First names; where two inputs of one folder collide, both take their extension.
    def key(dst: Path) -> str:  # case-insensitive file systems count too
        return str(dst.resolve()).casefold()

    first = [dst_of(src, rel, False) for src, rel, _ in unique]
    groups: dict[str, list[str]] = {}  # output -> the extensions of its sources
    for (src, _, _), d in zip(unique, first):
        if not _is_stream(d):
            groups.setdefault(key(d), []).append(src.suffix.casefold())

    def renamed(d: Path) -> bool:  # several sources that differ only in their extension
        exts = groups.get(key(d), []) if not _is_stream(d) and out_file is None else []
        return len(exts) > 1 and len(set(exts)) == len(exts)

    dsts = [dst_of(src, rel, True) if renamed(d) else d for (src, rel, _), d in zip(unique, first)]

    jobs: list[Job] = []
    refused: list[tuple[Path, str]] = []
    taken: dict[str, Path] = {}
    inputs_real = {k for k in seen_src if not _is_stream(k)}
    for (src, _, _), dst in zip(unique, dsts):
        if not _is_stream(dst):
            if dst.resolve() in inputs_real:
                refused.append((src, f"its output {dst} would replace an input of this run"))
                continue
            if key(dst) in taken:
                refused.append((src, f"its output {dst} is also the output of {taken[key(dst)]}"))
                continue
            taken[key(dst)] = src
        jobs.append(Job(src, dst))
    if not many and refused:
        raise CiaosrError(f"{refused[0][0]}: {refused[0][1]}")
    return Plan(jobs, skipped, refused, many)


def output_pixels(job: Job, resize: Resize) -> int:
    """The pixel count of ``job``'s output, from its input's header (no decoding): the
    cost by which a run split over processes balances them. 0 for stdin and for a file
    that cannot be read or sized (it fails at once when run)."""
    if _is_stream(job.src):
        return 0
    try:
        h, w = resize.output_size(image_size(job.src, upright=True))
    except CiaosrError:
        return 0
    return h * w


def output_bit_depth(source_bits: int, fmt: str, requested: int | None) -> int:
    """The bit depth to write: ``requested`` (8 or 16) if given, else the source's
    where the format holds it (16-bit PNG and TIFF), else 8."""
    if requested is not None:
        return requested
    return 16 if source_bits == 16 and fmt in SIXTEEN_BIT_FORMATS else 8


__all__ = ["STREAM", "FALLBACK_EXT", "Naming", "Job", "Plan", "plan_batch", "output_bit_depth", "output_pixels"]

"""Unpack a zip or tar archive safely into folders under a target.

``unpack(archive, target, mapping, max_bytes)`` extracts the regular files under the
archive folders named in ``mapping`` (archive folder -> folder under ``target``); other
members are left in the archive. Before anything is written the whole member list is
checked, and the archive is refused, on one line, when any member

* has an absolute path, a drive letter, or a ``..`` component (it would leave the target),
* is a link (symbolic or hard), a device or a FIFO,

or when the selected members' declared sizes add up to more than ``max_bytes``. The
bytes really written are counted against the same bound while extracting. A damaged or
truncated archive is one line too.

Files are written into a staging folder inside ``target`` and moved into place only
when the whole archive has been read, so a failure leaves nothing half-written in the
set folders (the staging folder is removed; a killed process can leave a hidden
``.ciaosr-unpack-*`` folder in ``target``, safe to delete). Existing files are kept
unless ``overwrite``; nothing outside ``target`` is ever written or removed.
"""

from __future__ import annotations

import os
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ...atomic import AlreadyExists, make_output_folders, publish, staging_folder
from ...errors import CiaosrError
from .download import check_free_space, format_bytes


@dataclass
class Member:
    name: str  # as stored in the archive
    size: int
    is_file: bool
    is_dir: bool
    handle: object  # ZipInfo or TarInfo


def _bad_name(name: str) -> str | None:
    """Why a member name would leave the target, or None."""
    if not name:
        return "an empty name"
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        return "an absolute path"
    if ".." in PurePosixPath(norm).parts:
        return "a '..' component"
    return None


def _zip_members(zf: zipfile.ZipFile) -> list[Member]:
    out = []
    for info in zf.infolist():
        mode = info.external_attr >> 16
        is_link = info.create_system == 3 and stat.S_ISLNK(mode)
        special = info.create_system == 3 and stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK)
        out.append(Member(info.filename, info.file_size, not info.is_dir() and not is_link and not special,
                          info.is_dir(), ("link" if is_link else "special") if (is_link or special) else info))
    return out


def _tar_members(tf: tarfile.TarFile) -> list[Member]:
    out = []
    for info in tf.getmembers():
        kind = None if (info.isfile() or info.isdir()) else ("link" if (info.issym() or info.islnk()) else "special")
        out.append(Member(info.name, info.size, info.isfile(), info.isdir(), kind or info))
    return out


def _target_path(name: str, mapping: dict[str, str]) -> str | None:
    """The member's path under the target, or None when no mapped folder holds it."""
    norm = "/".join(p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("", "."))
    for src, dst in mapping.items():
        if norm.startswith(src.rstrip("/") + "/"):
            return f"{dst.rstrip('/')}/{norm[len(src.rstrip('/')) + 1:]}"
    return None


def _open_archive(path: Path):
    """(kind, handle, members); one line for anything unreadable."""
    try:
        if zipfile.is_zipfile(path):
            zf = zipfile.ZipFile(path)
            return "zip", zf, _zip_members(zf)
        if tarfile.is_tarfile(path):
            tf = tarfile.open(path, "r:*")
            return "tar", tf, _tar_members(tf)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise CiaosrError(f"{path.name}: damaged or truncated archive ({exc})") from None
    raise CiaosrError(f"{path.name}: damaged or truncated archive (neither a readable zip nor tar)")


def _copy(src, dst_path: Path, budget: list[int], archive: str) -> None:
    with open(dst_path, "wb") as out:
        while True:
            block = src.read(1 << 20)
            if not block:
                break
            budget[0] -= len(block)
            if budget[0] < 0:
                raise CiaosrError(f"{archive}: expands past its bound while unpacking; refused")
            out.write(block)


def _check(members: list[Member], mapping: dict[str, str], archive: str, max_bytes: int) -> list[tuple[Member, str]]:
    selected = []
    for m in members:
        why = _bad_name(m.name)
        if why:
            raise CiaosrError(f"{archive}: refused, member {m.name!r} has {why}")
        if isinstance(m.handle, str):
            raise CiaosrError(f"{archive}: refused, member {m.name!r} is a {m.handle} (only files and folders are allowed)")
        rel = _target_path(m.name, mapping) if m.is_file else None
        if rel is not None:
            selected.append((m, rel))
    declared = sum(m.size for m, _ in selected)
    if declared > max_bytes:
        raise CiaosrError(f"{archive}: refused, it would expand to {format_bytes(declared)}, "
                          f"past its bound of {format_bytes(max_bytes)}")
    if not selected:
        raise CiaosrError(f"{archive}: none of {', '.join(mapping)} in the archive")
    return selected


def unpack(archive: str | os.PathLike, target: str | os.PathLike, mapping: dict[str, str], max_bytes: int,
           overwrite: bool = False, progress: bool | None = None) -> dict:
    """Extract (see the module docstring); returns ``{"written": n, "kept": n}``."""
    from tqdm.auto import tqdm

    archive, target = Path(archive), Path(target)
    kind, handle, members = _open_archive(archive)
    with handle:
        selected = _check(members, mapping, archive.name, max_bytes)
        check_free_space(target, sum(m.size for m, _ in selected), f"unpacking {archive.name}")
        budget = [max_bytes]
        try:
            with staging_folder(target, ".ciaosr-unpack-") as staging:
                for m, rel in tqdm(selected, desc=f"unpack {archive.name}", unit="file", leave=False,
                                   disable=(not progress) if progress is not None else None):
                    dst = staging / rel
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    try:
                        src = handle.open(m.handle) if kind == "zip" else handle.extractfile(m.handle)
                        with src:
                            _copy(src, dst, budget, archive.name)
                    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as exc:
                        raise CiaosrError(f"{archive.name}: damaged or truncated archive ({exc})") from None
                written = kept = 0
                for m, rel in selected:
                    make_output_folders([(target / rel).parent], writable=False)
                    try:
                        publish(staging / rel, target / rel, overwrite)
                        written += 1
                    except AlreadyExists:
                        kept += 1
        except OSError as exc:
            raise CiaosrError(f"cannot unpack {archive.name} into {target}: {exc.strerror or exc}") from None
    return {"written": written, "kept": kept}


__all__ = ["unpack"]

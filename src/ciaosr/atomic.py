"""Atomic file writes: the content goes to a temporary file in the destination folder,
which is then moved into place, so a reader (or a crash) never sees a half-written file.

The file gets the mode a plain ``open(path, "w")`` would give (0o666 minus the umask),
not the 0o600 of the temporary file. Without ``overwrite`` an existing file is never
replaced, not even one that appears while the content is written.
``check_writable_folder`` tries the same before any work is done.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Callable

from .errors import CiaosrError

# Errors of ``os.link`` on file systems without hard links.
_NO_HARD_LINKS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS,
                  errno.EACCES)


def default_file_mode() -> int:
    """Permissions a plain ``open(..., 'w')`` would give (0o666 minus the umask)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _temp_file(folder: Path, prefix: str, suffix: str = "") -> str:
    """An empty new file in ``folder`` (its name); one-line errors when there is none to make."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError) and not folder.is_dir():
            raise CiaosrError(f"{folder}: output folder does not exist") from None
        raise CiaosrError(f"{folder}: output folder is not writable ({exc.strerror or exc})") from None
    os.close(fd)
    return tmp


def check_writable_folder(folder: str | os.PathLike) -> None:
    """Raise unless a file can really be created in ``folder`` (tried, not guessed:
    permission bits say nothing for root, or on read-only mounts)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CiaosrError(f"{folder}: output folder does not exist or is not a folder")
    os.unlink(_temp_file(folder, ".ciaosr-probe-"))


def write_atomic(path: str | os.PathLike, write: Callable[[str], None], overwrite: bool = False) -> Path:
    """Create ``path`` with ``write(tmp)``, which fills the temporary file named ``tmp``.

    The folder of ``path`` must exist. Every ``OSError`` becomes a one-line
    :class:`CiaosrError`; the temporary file is removed whatever happens.
    """
    path = Path(path)
    tmp = _temp_file(path.parent, f".{path.name}.", ".tmp")
    try:
        write(tmp)
        os.chmod(tmp, default_file_mode())
        _move_into_place(tmp, path, overwrite)
    except OSError as exc:
        raise CiaosrError(f"{path}: cannot write ({exc.strerror or exc})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _already_exists(path: Path) -> CiaosrError:
    return CiaosrError(f"{path}: already exists (use --overwrite to replace it)")


def _move_into_place(tmp: str, path: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # fails if ``path`` exists: no window in which it is clobbered
    except FileExistsError:
        raise _already_exists(path) from None
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        # File systems without hard links: check, then move (a small race remains).
        if path.exists():
            raise _already_exists(path) from None
        os.replace(tmp, path)
    else:
        os.unlink(tmp)


__all__ = ["check_writable_folder", "default_file_mode", "write_atomic"]

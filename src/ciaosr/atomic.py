"""How the package writes files and folders: the one place for it.

A file (or a folder of files) is made under a temporary name in its destination folder
and then *published*, moved into place in one rename, so a reader (or a crash) never
sees a half-written one. Without ``overwrite`` nothing that exists is ever replaced, not
even something that appears while the content is written (:class:`AlreadyExists`).

* :func:`write_atomic`: one file, written by a callback into a temporary file.
* :func:`staging_folder` and :func:`publish` / :func:`publish_all`: several files (or a
  whole folder) made in a hidden folder beside their destination, then moved into place;
  :func:`publish` also moves a file made elsewhere (a download's ``.part``).

Output folders follow one rule: a user-named output's missing folders are created, with
their parents, as ``mkdir -p`` would. :func:`check_output_folder` checks before any work
that they can be (or that the folder takes new files); :func:`output_folders` (for a
block), :func:`make_output_folders` and ``write_atomic(make_parents=True)`` create them,
and remove the ones they created again, if still empty, when what follows fails: a
failed command leaves no empty folder behind. A folder that cannot be created (a parent
is a file, no permission) is one line (:class:`~ciaosr.errors.CiaosrError`).

Files get the mode a plain ``open(path, "w")`` would give (0o666 minus the umask), folders
a plain ``mkdir``'s, not the 0o600 / 0o700 of temporary ones.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .errors import CiaosrError

# Errors of ``os.link`` on file systems without hard links.
_NO_HARD_LINKS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS,
                  errno.EACCES)


class AlreadyExists(CiaosrError):
    """An output that exists and is kept (no ``overwrite``)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        super().__init__(f"{path}: already exists (use --overwrite to replace it)")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """Permissions a plain ``open(..., 'w')`` would give (0o666 minus the umask)."""
    return 0o666 & ~_umask()


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _temp(folder: Path, prefix: str, suffix: str = "", *, is_folder: bool = False) -> str:
    """An empty new file (or folder) in ``folder``: its name; one-line errors when there is none to make."""
    try:
        if is_folder:
            return tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=folder)
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError) and not folder.is_dir():
            raise CiaosrError(f"{folder}: output folder does not exist") from None
        raise CiaosrError(f"{folder}: output folder is not writable ({_why(exc)})") from None
    os.close(fd)
    return tmp


# --------------------------------------------------------------------------------------
# Output folders
# --------------------------------------------------------------------------------------
def check_writable_folder(folder: str | os.PathLike) -> None:
    """Raise unless a file can really be created in ``folder`` (tried, not guessed:
    permission bits say nothing for root, or on read-only mounts)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CiaosrError(f"{folder}: output folder does not exist or is not a folder")
    why = _refusal(folder)
    if why:
        raise CiaosrError(f"{folder}: output folder is not writable ({why})")


def _refusal(folder: Path) -> str | None:
    """Why no file can be created in the folder ``folder`` (None: one can)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".ciaosr-probe-", dir=folder)
    except OSError as exc:
        return _why(exc)
    os.close(fd)
    os.unlink(probe)
    return None


def _nearest_existing(folder: Path) -> Path:
    """``folder`` or its nearest ancestor that exists, which must be a folder (one line if not)."""
    base = folder
    while not base.exists() and not base.is_symlink() and base.parent != base:  # a broken link exists
        base = base.parent
    if not base.is_dir():
        if base == folder:
            raise CiaosrError(f"{folder}: is not a folder")
        raise _cannot_create(folder, f"{base} is not a folder")
    return base


def _cannot_create(folder: Path, why: str) -> CiaosrError:
    return CiaosrError(f"{folder}: cannot create output folder ({why})")


def check_output_folder(folder: str | os.PathLike) -> None:
    """Before any work: raise (one line) unless ``folder`` takes new files, or is missing
    and can be created (its nearest existing ancestor is a folder that takes new ones).
    Nothing is created."""
    folder = Path(folder)
    base = _nearest_existing(folder)
    if base == folder:
        check_writable_folder(folder)
    else:
        why = _refusal(base)
        if why:
            raise _cannot_create(folder, f"{base} is not writable: {why}")


def remove_empty_folders(folders: Iterable[str | os.PathLike]) -> None:
    """Remove each of ``folders`` that is empty, innermost first (a folder given before
    its sub-folders, as :func:`make_output_folders` returns them); the others stay."""
    for folder in reversed(list(folders)):
        with contextlib.suppress(OSError):
            os.rmdir(folder)


def make_output_folders(folders: Iterable[str | os.PathLike], writable: bool = True) -> list[Path]:
    """Create each of ``folders`` and its missing parents, and check that each takes new
    files (unless not ``writable``: a caller that may have nothing to write); returns the
    folders created (parents first). All or nothing: on a one-line error (a parent is a
    file, no permission) the folders it created are removed again."""
    made: list[Path] = []
    try:
        for folder in map(Path, folders):
            base = _nearest_existing(folder)
            for missing in reversed([folder, *folder.parents][:len(folder.parts) - len(base.parts)]):
                try:
                    missing.mkdir()
                except FileExistsError:  # made meanwhile by another process: theirs
                    if not missing.is_dir():
                        raise _cannot_create(folder, f"{missing} is not a folder") from None
                    continue
                except OSError as exc:
                    raise _cannot_create(folder, _why(exc)) from None
                made.append(missing)
            if writable:
                check_writable_folder(folder)
    except BaseException:
        remove_empty_folders(made)
        raise
    return made


@contextlib.contextmanager
def output_folders(*folders: str | os.PathLike, writable: bool = True) -> Iterator[list[Path]]:
    """``folders`` created (with their parents) for the block, which writes into them;
    if the block fails, the folders created here are removed again when still empty.
    ``writable``: as :func:`make_output_folders`'s."""
    made = make_output_folders(folders, writable)
    try:
        yield [Path(f) for f in folders]
    except BaseException:
        remove_empty_folders(made)
        raise


# --------------------------------------------------------------------------------------
# Publishing
# --------------------------------------------------------------------------------------
@contextlib.contextmanager
def staging_folder(folder: str | os.PathLike, prefix: str = ".ciaosr-") -> Iterator[Path]:
    """A new hidden folder in ``folder`` (which must exist), to make files in before they
    are published (:func:`publish`, :func:`publish_all`): the same file system, so the
    move is a rename. It is removed, with whatever is left in it, after the block."""
    staging = Path(_temp(Path(folder), prefix, is_folder=True))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _publish_file(tmp: Path, path: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # fails if ``path`` exists: no window in which it is clobbered
    except FileExistsError:
        raise AlreadyExists(path) from None
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        # File systems without hard links: check, then move (a small race remains).
        if os.path.lexists(path):
            raise AlreadyExists(path) from None
        os.replace(tmp, path)
    else:
        os.unlink(tmp)


def _publish_folder(tmp: Path, path: Path) -> None:
    if os.path.lexists(path):
        raise AlreadyExists(path)
    os.chmod(tmp, 0o777 & ~_umask())  # a plain mkdir's
    try:
        os.rename(tmp, path)  # onto a folder made meanwhile: refused unless it is empty
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
            raise AlreadyExists(path) from None
        raise


def publish(tmp: str | os.PathLike, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Move the finished file or folder ``tmp`` to ``path``, on the same file system, in
    one rename. An existing ``path`` is :class:`AlreadyExists` unless ``overwrite`` (a
    file only: a folder is never replaced). ``tmp`` keeps its mode, except a folder made
    by :func:`staging_folder`, which gets a plain ``mkdir``'s. Other failures are one
    line; ``tmp`` is then left where it was (the caller's to keep or remove)."""
    tmp, path = Path(tmp), Path(path)
    try:
        if tmp.is_dir() and not tmp.is_symlink():
            _publish_folder(tmp, path)
        else:
            _publish_file(tmp, path, overwrite)
    except OSError as exc:
        raise CiaosrError(f"{path}: cannot write ({_why(exc)})") from None
    return path


def publish_all(staging: str | os.PathLike, folder: str | os.PathLike, overwrite: bool = False) -> list[Path]:
    """Publish every file of ``staging`` into ``folder`` under the same names; returns
    their paths. Without ``overwrite`` all or none: an existing one is refused before
    any is moved, and the ones moved are removed again if a later one fails."""
    names = sorted(p.name for p in Path(staging).iterdir())
    targets = [Path(folder) / name for name in names]
    if not overwrite:
        for target in targets:
            if os.path.lexists(target):
                raise AlreadyExists(target)
    done: list[Path] = []
    try:
        for name, target in zip(names, targets):
            done.append(publish(Path(staging) / name, target, overwrite))
    except BaseException:
        if not overwrite:
            for target in done:
                with contextlib.suppress(OSError):
                    os.unlink(target)
        raise
    return done


def write_atomic(path: str | os.PathLike, write: Callable[[str], None], overwrite: bool = False,
                 make_parents: bool = False) -> Path:
    """Create ``path`` with ``write(tmp)``, which fills the temporary file named ``tmp``.

    The folder of ``path`` must exist, unless ``make_parents`` (an output's missing
    folders are then created, and removed again if the write fails). Every ``OSError``
    becomes a one-line :class:`CiaosrError`; the temporary file is removed whatever happens.
    """
    path = Path(path)
    with output_folders(path.parent) if make_parents else contextlib.nullcontext():
        tmp = _temp(path.parent, f".{path.name}.", ".tmp")
        try:
            write(tmp)
            os.chmod(tmp, default_file_mode())
            publish(tmp, path, overwrite)
        except OSError as exc:
            raise CiaosrError(f"{path}: cannot write ({_why(exc)})") from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return path


__all__ = ["AlreadyExists", "check_output_folder", "check_writable_folder", "default_file_mode",
           "make_output_folders", "output_folders", "publish", "publish_all", "remove_empty_folders",
           "staging_folder", "write_atomic"]

"""Download one file over HTTP(S), safely: resumable, checked, never half-written.

``download(url, dest)`` writes to ``<dest>.part`` and publishes it as ``dest``
(``ciaosr.atomic``) only once the whole file is there and its checksum (MD5 or SHA-256,
when given) matches:

* a ``.part`` left by an interrupted run is resumed with an HTTP ``Range`` request (a
  server that ignores it sends the whole file, which is then written from the start);
* connection errors, timeouts and 5xx answers are retried with exponential backoff
  (``backoff``, ``2 * backoff``, ...); what another try cannot fix fails at once: a
  4xx answer (but 408 and 429), a host name that does not resolve (offline), a
  refused connection;
* the free disk space is checked against the bytes still to come before any is written;
* a progress bar on stderr shows bytes, size and speed (tqdm; off when stderr is not a
  terminal, or with ``progress=False``).

Every failure is one ``CiaosrError`` line: offline, an HTTP error, a timeout, a full
disk, a checksum mismatch (the bad ``.part`` is removed). Network and disk failures
keep a non-empty ``.part``, so the next run resumes; the message says so. The folders
made for ``dest`` are removed again when a failure leaves them empty.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import shutil
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from ... import __version__
from ...atomic import output_folders, publish
from ...errors import CiaosrError

CHUNK = 1 << 20
USER_AGENT = f"ciaosr/{__version__} (dataset download)"


def file_digest(path: str | os.PathLike, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def check_checksum(path: Path, md5: str | None = None, sha256: str | None = None) -> str | None:
    """None when the file matches every checksum given, else what differs (one phrase)."""
    for algorithm, want in (("sha256", sha256), ("md5", md5)):
        if want:
            got = file_digest(path, algorithm)
            if got != want.lower():
                return f"{algorithm.upper()} {got}, expected {want.lower()}"
    return None


def check_free_space(folder: Path, needed: int, what: str) -> None:
    """A one-line error unless ``folder``'s file system has ``needed`` bytes free."""
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise CiaosrError(f"not enough disk space in {folder} for {what}: "
                          f"{format_bytes(needed)} needed, {format_bytes(free)} free")


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


class _Retry(Exception):
    """A failure worth another try (the message says what happened)."""


class _Restart(_Retry):
    """The ``.part`` does not belong to the server's file: start again from nothing."""


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc or url


def _open(url: str, offset: int, timeout: float):
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:  # Content-Range: bytes */<size>
            size = exc.headers.get("Content-Range", "").rsplit("/", 1)[-1]
            if size == str(offset):
                return None  # the .part is already whole
            raise _Restart(f"HTTP 416 for {url}: the partial file does not fit the server's ({size} bytes)") from None
        message = f"HTTP {exc.code} {exc.reason} for {url}"
        if exc.code >= 500 or exc.code in (408, 429):
            raise _Retry(message) from None
        raise CiaosrError(message) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, (TimeoutError, socket.timeout)):
            raise _Retry(f"no answer from {_host(url)} within {timeout:g} s") from None
        _refuse_unreachable(url, reason)
        raise _Retry(f"cannot reach {_host(url)} ({getattr(reason, 'strerror', None) or reason})") from None
    except (TimeoutError, socket.timeout):
        raise _Retry(f"no answer from {_host(url)} within {timeout:g} s") from None
    except (ConnectionError, http.client.HTTPException) as exc:
        _refuse_unreachable(url, exc)
        raise _Retry(f"connection to {_host(url)} failed ({exc})") from None


def _refuse_unreachable(url: str, reason) -> None:
    """A one-line error at once for what another try cannot fix: a host name that does
    not resolve (offline, or a wrong address) or a connection refused (nothing serves there)."""
    host = urllib.parse.urlsplit(url).hostname or _host(url)
    if isinstance(reason, socket.gaierror):
        raise CiaosrError(f"cannot resolve {host} ({reason.strerror or reason}): offline, or a wrong address") \
            from None
    if isinstance(reason, ConnectionRefusedError):
        raise CiaosrError(f"cannot reach {_host(url)} (connection refused): nothing serves there") from None


def _total_size(resp, offset: int) -> tuple[int | None, bool]:
    """(whole file's size or None, whether the answer continues at ``offset``)."""
    if resp.status == 206:
        rng = resp.headers.get("Content-Range", "")  # bytes a-b/total
        try:
            start = int(rng.split()[1].split("-")[0])
            total = rng.rsplit("/", 1)[1]
            return (int(total) if total != "*" else None), start == offset
        except (IndexError, ValueError):
            return None, False
    length = resp.headers.get("Content-Length")
    return (int(length) if length and length.isdigit() else None), False


def _fetch_once(url: str, part: Path, timeout: float, progress: bool | None, desc: str, room: float,
                size: int | None) -> None:
    from tqdm.auto import tqdm

    offset = part.stat().st_size if part.exists() else 0
    resp = _open(url, offset, timeout)
    if resp is None:
        return  # 416: nothing more to fetch; the checksum decides
    with resp:
        total, resumed = _total_size(resp, offset)
        if not resumed:
            offset = 0  # the server sent the file from its start
        expected = total if total is not None else size  # the server's word first, else the catalog's
        if expected is not None:
            what = part.name.removesuffix(".part") + (" and its unpacked files" if room else "")
            check_free_space(part.parent, max(expected - offset, 0) + int(room * expected), what)
        mode = "ab" if offset else "wb"
        bar = tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
                   file=sys.stderr, disable=(not progress) if progress is not None else None, leave=False)
        got = offset
        try:
            with open(part, mode) as f:
                while True:
                    try:
                        block = resp.read(CHUNK)
                    except (TimeoutError, socket.timeout):
                        raise _Retry(f"no data from {_host(url)} for {timeout:g} s") from None
                    except (ConnectionError, http.client.HTTPException) as exc:
                        raise _Retry(f"connection to {_host(url)} broke ({exc.__class__.__name__})") from None
                    if not block:
                        break
                    f.write(block)
                    got += len(block)
                    bar.update(len(block))
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise CiaosrError(f"disk full while writing {part} ({format_bytes(got)} written; "
                                  f"free some space and run again to resume)") from None
            raise
        finally:
            bar.close()
        if total is not None and got < total:
            raise _Retry(f"connection to {_host(url)} closed after {format_bytes(got)} of {format_bytes(total)}")


def download(url: str, dest: str | os.PathLike, *, md5: str | None = None, sha256: str | None = None,
             timeout: float = 60.0, retries: int = 5, backoff: float = 2.0, progress: bool | None = None,
             room: float = 0.0, size: int | None = None, sleep=time.sleep) -> Path:
    """Fetch ``url`` to ``dest`` (see the module docstring); returns ``dest``.

    An existing ``dest`` that passes the checksums is kept as is (without checksums,
    any existing ``dest`` is). ``retries`` further attempts follow the first. ``room``:
    free space to leave beside the file, as a multiple of its size (1.0 for an archive
    of PNG images, which unpack to about their own size). ``size``: the file's size when
    known beforehand, for the disk check when the server does not announce one.
    """
    dest = Path(dest)
    # made if missing, and removed again if this fails and leaves them empty
    with output_folders(dest.parent, writable=False):
        if dest.exists() and check_checksum(dest, md5, sha256) is None:
            return dest
        part = dest.with_name(dest.name + ".part")
        try:
            _attempts(url, part, retries, backoff, sleep, (timeout, progress, dest.name, room, size))
        except BaseException:
            if part.exists() and not part.stat().st_size:
                part.unlink()  # an empty .part resumes nothing
            raise
        if not part.exists():
            raise CiaosrError(f"download of {url} gave no file")
        bad = check_checksum(part, md5, sha256)
        if bad:
            part.unlink()
            raise CiaosrError(f"checksum mismatch for {dest.name} from {url}: {bad} (the file was removed)")
        publish(part, dest, overwrite=True)  # a dest that failed its checksums is replaced
    return dest


def _attempts(url: str, part: Path, retries: int, backoff: float, sleep, once: tuple) -> None:
    """The first try and up to ``retries`` more, while what fails is worth another."""
    last = ""
    for attempt in range(retries + 1):
        if attempt:
            sleep(backoff * 2 ** (attempt - 1))
        try:
            _fetch_once(url, part, *once)
            return
        except _Restart as exc:
            part.unlink()
            last = str(exc)
        except _Retry as exc:
            last = str(exc)
        except OSError as exc:
            raise CiaosrError(f"cannot write {part}: {exc.strerror or exc}") from None
    kept = f"; {format_bytes(part.stat().st_size)} kept in {part.name}, run again to resume" \
        if part.exists() and part.stat().st_size else ""
    raise CiaosrError(f"download failed after {retries + 1} attempt(s): {last}{kept}")


__all__ = ["check_checksum", "check_free_space", "download", "file_digest", "format_bytes"]

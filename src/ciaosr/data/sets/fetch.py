"""``ciaosr data fetch``: download a set's files and unpack them into the data root.

Archives go to ``<root>/.downloads/`` (resumable ``.part`` files), are checked against
the catalog's checksum, unpacked safely (``unpack.py``) and then removed, unless
``keep_archives``. A download whose folders are already complete is skipped. A failed
fetch leaves no folder it made empty (the data root, ``.downloads``, a set's folders).
``mirror`` replaces the set's base URL: the same file names under another host.
"""

from __future__ import annotations

from pathlib import Path

from ...atomic import output_folders, remove_empty_folders
from ...errors import CiaosrError
from .catalog import DataSet, Download
from .download import check_checksum, download
from .layout import is_complete
from .unpack import unpack

DOWNLOADS = ".downloads"


def download_url(ds: DataSet, item: Download, mirror: str | None = None) -> str:
    base = mirror or ds.base_url
    if not base:
        raise CiaosrError(f"{ds.name} has no download address")
    return base.rstrip("/") + "/" + item.path


def fetch(ds: DataSet, root: str | Path, *, mirror: str | None = None, keep_archives: bool = False,
          overwrite: bool = False, timeout: float = 60.0, retries: int = 5, backoff: float = 2.0,
          progress: bool | None = None, log=print) -> dict:
    """Fetch every download of ``ds``; returns counts ``{"downloaded", "skipped", "written", "kept"}``."""
    if not ds.fetchable:
        raise CiaosrError(f"{ds.name} cannot be downloaded: {ds.about}")  # the about says how to get it
    if mirror is not None and not mirror.lower().startswith(("http://", "https://")):
        raise CiaosrError(f"--mirror must be an http:// or https:// address, got {mirror!r}")
    root = Path(root)
    counts = {"downloaded": 0, "skipped": 0, "written": 0, "kept": 0}
    # Made if missing, and removed again if the fetch fails and leaves it empty (a root that
    # is there, read-only say, is only written to if something is missing from it).
    with output_folders(root, writable=False):
        try:
            _fetch_all(ds, root, mirror, keep_archives, overwrite, counts, log,
                       dict(timeout=timeout, retries=retries, backoff=backoff, progress=progress))
        finally:
            remove_empty_folders([root / DOWNLOADS])
    return counts


def _fetch_all(ds: DataSet, root: Path, mirror, keep_archives: bool, overwrite: bool, counts: dict, log,
               net: dict) -> None:
    for item in ds.downloads:
        url = download_url(ds, item, mirror)
        if item.is_archive:
            dests = tuple(dst for _, dst in item.unpack)
            if not overwrite and is_complete(ds, root, dests):
                counts["skipped"] += 1
                log(f"{item.name}: {', '.join(dests)} complete already, not downloaded")
                continue
            archive = download(url, root / DOWNLOADS / item.name, md5=item.md5, sha256=item.sha256, room=1.0,
                               size=item.size, **net)
            counts["downloaded"] += 1
            res = unpack(archive, root, dict(item.unpack), item.max_unpacked, overwrite=overwrite,
                         progress=net["progress"])
            counts["written"] += res["written"]
            counts["kept"] += res["kept"]
            log(f"{item.name}: {res['written']} file(s) unpacked into {', '.join(dests)}"
                + (f", {res['kept']} existing kept" if res["kept"] else ""))
            if not keep_archives:
                archive.unlink()
        else:
            dest = root / item.dest / item.name
            if dest.exists() and not overwrite:
                if check_checksum(dest, item.md5, item.sha256) is not None:
                    log(f"{dest}: exists and differs from the source; kept (--overwrite replaces it)")
                    counts["kept"] += 1
                else:
                    counts["skipped"] += 1
                continue
            if dest.exists():
                dest.unlink()
            download(url, dest, md5=item.md5, sha256=item.sha256, size=item.size, **net)
            counts["downloaded"] += 1
            counts["written"] += 1


__all__ = ["DOWNLOADS", "download_url", "fetch"]

"""ciaosr data fetch: downloads and archives against a local HTTP server on 127.0.0.1.

The server (a threaded http.server in this process) serves small archives built here; it
honours Range requests and can answer 404 or 500, hang, or cut a transfer short.
"""

from __future__ import annotations

import errno
import hashlib
import http.server
import io
import socket
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ciaosr.cli.main import main
from ciaosr.data.sets import catalog, download as dl
from ciaosr.data.sets.download import download
from ciaosr.data.sets.unpack import unpack
from ciaosr.errors import CiaosrError


class Server:
    """Files by URL path; ``cut[path] = n``: the next answer for ``path`` stops after n
    bytes; ``hang``: paths that never answer; every request's headers are recorded."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.status: dict[str, int] = {}
        self.hang: set[str] = set()
        self.requests: list[tuple[str, str | None]] = []
        self.release = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                path = self.path
                server.requests.append((path, self.headers.get("Range")))
                if path in server.hang:
                    server.release.wait(10)
                    return
                if path in server.status:
                    self.send_error(server.status[path])
                    return
                data = server.files.get(path)
                if data is None:
                    self.send_error(404)
                    return
                start, code = 0, 200
                rng = self.headers.get("Range")
                if rng:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    code = 206
                self.send_response(code)
                self.send_header("Content-Length", str(len(data) - start))
                if code == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                body = data[start:]
                if path in server.cut:
                    body = body[:server.cut.pop(path)]
                    self.wfile.write(body)
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def png_bytes(w: int, h: int, seed: int) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def make_zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def make_tar(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return buf.getvalue()


def tree(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


# --- download ---------------------------------------------------------------------------

def test_interrupted_download_resumes_with_range(server, tmp_path):
    data = np.random.default_rng(0).bytes(3_000_000)
    server.files["/a.bin"] = data
    server.cut["/a.bin"] = 1_000_000
    out = download(server.url + "/a.bin", tmp_path / "a.bin", sha256=hashlib.sha256(data).hexdigest(),
                   timeout=5, retries=2, backoff=0, progress=False)
    assert out.read_bytes() == data
    assert server.requests[0] == ("/a.bin", None)
    assert server.requests[1][1] == "bytes=1000000-"  # the second try asked for the rest only
    assert tree(tmp_path) == ["a.bin"]


def test_part_left_by_an_earlier_run_is_resumed(server, tmp_path):
    data = np.random.default_rng(1).bytes(200_000)
    server.files["/b.bin"] = data
    (tmp_path / "b.bin.part").write_bytes(data[:150_000])
    download(server.url + "/b.bin", tmp_path / "b.bin", md5=hashlib.md5(data).hexdigest(), timeout=5,
             retries=0, progress=False)
    assert (tmp_path / "b.bin").read_bytes() == data
    assert server.requests == [("/b.bin", "bytes=150000-")]


def test_progress_bar_shows_size_and_speed_on_stderr(server, tmp_path, capsys):
    server.files["/e.bin"] = b"e" * 3_000_000
    download(server.url + "/e.bin", tmp_path / "e.bin", retries=0, progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "e.bin" in captured.err and "2.86M" in captured.err and "B/s" in captured.err


def test_wrong_checksum_is_one_line_and_leaves_nothing(server, tmp_path):
    server.files["/c.bin"] = b"x" * 1000
    with pytest.raises(CiaosrError, match="checksum mismatch for c.bin") as exc:
        download(server.url + "/c.bin", tmp_path / "c.bin", md5="0" * 32, retries=0, progress=False)
    assert "\n" not in str(exc.value)
    assert tree(tmp_path) == []


@pytest.mark.parametrize("status", [404, 403, 410])
def test_404_403_410_are_final_and_write_nothing(server, tmp_path, status):
    server.status["/nothing.zip"] = status
    waits = []
    with pytest.raises(CiaosrError, match=rf"HTTP {status} .* for http://127\.0\.0\.1:\d+/nothing\.zip$"):
        download(server.url + "/nothing.zip", tmp_path / "new" / "nothing.zip", retries=3, backoff=1,
                 progress=False, sleep=waits.append)
    assert len(server.requests) == 1 and waits == []  # a 4xx is not retried
    assert tree(tmp_path) == []  # nor is the folder made for it left


def test_5xx_is_retried_with_backoff_then_one_line(server, tmp_path):
    server.status["/busy.zip"] = 503
    waits = []
    with pytest.raises(CiaosrError, match=r"download failed after 3 attempt\(s\): HTTP 503"):
        download(server.url + "/busy.zip", tmp_path / "busy.zip", retries=2, backoff=0.5, progress=False,
                 sleep=waits.append)
    assert waits == [0.5, 1.0]
    assert len(server.requests) == 3
    assert tree(tmp_path) == []


def test_hanging_server_times_out_with_one_line(server, tmp_path):
    server.hang.add("/slow.zip")
    with pytest.raises(CiaosrError, match=r"failed after 2 attempt\(s\): no answer from 127\.0\.0\.1:\d+ within 0\.3 s"):
        download(server.url + "/slow.zip", tmp_path / "slow.zip", timeout=0.3, retries=1, backoff=0, progress=False)
    assert tree(tmp_path) == []


def test_offline_is_one_line(tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    waits = []
    with pytest.raises(CiaosrError, match=r"^cannot reach 127\.0\.0\.1:\d+ \(connection refused\)"):
        download(f"http://127.0.0.1:{port}/x.zip", tmp_path / "x.zip", retries=5, backoff=1, progress=False,
                 sleep=waits.append)
    assert waits == []  # refused: not tried again
    assert tree(tmp_path) == []


def test_a_host_that_does_not_resolve_fails_at_once_and_leaves_no_folder(tmp_path):
    t0 = time.monotonic()
    with pytest.raises(CiaosrError, match=r"^cannot resolve nonexistent\.invalid \(.*\): offline, or a wrong address$"):
        download("http://nonexistent.invalid/x.zip", tmp_path / "a" / "b" / "x.zip", retries=5, backoff=2,
                 progress=False)
    assert time.monotonic() - t0 < 5
    assert tree(tmp_path) == []


def test_full_disk_is_found_before_writing(server, tmp_path, monkeypatch):
    server.files["/big.zip"] = b"z" * 50_000
    real = dl.shutil.disk_usage
    monkeypatch.setattr(dl.shutil, "disk_usage", lambda p: real(p)._replace(free=10_000))
    with pytest.raises(CiaosrError, match=r"not enough disk space .* for big\.zip and its unpacked files: "
                                          r"97\.7 KiB needed, 9\.8 KiB free"):
        download(server.url + "/big.zip", tmp_path / "big.zip", retries=0, progress=False, room=1.0)
    assert tree(tmp_path) == []


def test_disk_filling_up_while_writing_is_one_line_and_resumable(server, tmp_path, monkeypatch):
    data = np.random.default_rng(2).bytes(3_000_000)
    server.files["/d.bin"] = data

    class FullDisk(io.FileIO):
        def write(self, b):
            if self.tell() + len(b) > 1_500_000:
                raise OSError(errno.ENOSPC, "No space left on device")
            return super().write(b)

    monkeypatch.setattr(dl, "open", lambda path, mode: FullDisk(path, mode.replace("b", "")), raising=False)
    with pytest.raises(CiaosrError, match=r"disk full while writing .*d\.bin\.part .*run again to resume"):
        download(server.url + "/d.bin", tmp_path / "d.bin", retries=2, backoff=0, progress=False)
    assert tree(tmp_path) == ["d.bin.part"]  # never the file itself
    kept = (tmp_path / "d.bin.part").stat().st_size
    assert 0 < kept <= 1_500_000
    monkeypatch.undo()
    download(server.url + "/d.bin", tmp_path / "d.bin", retries=0, progress=False)
    assert (tmp_path / "d.bin").read_bytes() == data
    assert server.requests[-1][1] == f"bytes={kept}-"


# --- unpack -----------------------------------------------------------------------------

MAPPING = {"pack/HR": "Set/HR"}


def _unpack_bytes(tmp_path, name: str, data: bytes, max_bytes: int = 10 ** 7):
    archive = tmp_path / name
    archive.write_bytes(data)
    target = tmp_path / "root"
    target.mkdir(exist_ok=True)
    return archive, target, lambda: unpack(archive, target, MAPPING, max_bytes, progress=False)


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_unpack_takes_the_mapped_folders_only(tmp_path, kind):
    members = {"pack/HR/a.png": b"A" * 10, "pack/HR/b.png": b"B" * 20, "pack/other/c.png": b"C"}
    data = make_zip(members) if kind == "zip" else make_tar(members)
    _, target, run = _unpack_bytes(tmp_path, f"p.{kind}", data)
    assert run() == {"written": 2, "kept": 0}
    assert tree(target) == ["Set", "Set/HR", "Set/HR/a.png", "Set/HR/b.png"]
    assert (target / "Set/HR/b.png").read_bytes() == b"B" * 20


@pytest.mark.parametrize("name", ["../../x", "pack/HR/../../../x", "/etc/x", "C:\\x"])
@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_member_leaving_the_target_refuses_the_archive(tmp_path, kind, name):
    members = {"pack/HR/a.png": b"A", name: b"evil"}
    data = make_zip(members) if kind == "zip" else make_tar(members)
    _, target, run = _unpack_bytes(tmp_path, f"p.{kind}", data)
    with pytest.raises(CiaosrError, match=r"refused, member .* has (a '\.\.' component|an absolute path)"):
        run()
    assert tree(target) == []
    assert not (tmp_path.parent / "x").exists()


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_links_are_refused(tmp_path, kind):
    if kind == "tar":
        data = make_tar({"pack/HR/a.png": b"A"}, links={"pack/HR/b.png": "/etc/passwd"})
    else:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("pack/HR/a.png", b"A")
            link = zipfile.ZipInfo("pack/HR/b.png")
            link.create_system = 3
            link.external_attr = (0o120777 << 16)  # a symbolic link, as Info-ZIP stores one
            zf.writestr(link, "/etc/passwd")
        data = buf.getvalue()
    _, target, run = _unpack_bytes(tmp_path, f"p.{kind}", data)
    with pytest.raises(CiaosrError, match=r"refused, member 'pack/HR/b\.png' is a link"):
        run()
    assert tree(target) == []


def test_archive_past_its_bound_is_refused(tmp_path):
    data = make_zip({"pack/HR/a.png": b"\0" * 100_000})  # compresses to a few hundred bytes
    _, target, run = _unpack_bytes(tmp_path, "p.zip", data, max_bytes=50_000)
    with pytest.raises(CiaosrError, match=r"refused, it would expand to 97\.7 KiB, past its bound of 48\.8 KiB"):
        run()
    assert tree(target) == []


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_truncated_archive_is_one_line_and_leaves_nothing(tmp_path, kind):
    members = {f"pack/HR/{i}.png": png_bytes(64, 64, i) for i in range(3)}
    data = make_zip(members) if kind == "zip" else make_tar(members)
    _, target, run = _unpack_bytes(tmp_path, f"p.{kind}", data[: len(data) * 2 // 3])
    with pytest.raises(CiaosrError, match=r"p\.(zip|tar): damaged or truncated archive") as exc:
        run()
    assert "\n" not in str(exc.value)
    assert tree(target) == []


def test_existing_files_are_kept(tmp_path):
    _, target, run = _unpack_bytes(tmp_path, "p.zip", make_zip({"pack/HR/a.png": b"new"}))
    (target / "Set/HR").mkdir(parents=True)
    (target / "Set/HR/a.png").write_bytes(b"mine")
    assert run() == {"written": 0, "kept": 1}
    assert (target / "Set/HR/a.png").read_bytes() == b"mine"


# --- ciaosr data fetch ------------------------------------------------------------------

def _bench_tar() -> bytes:
    members = {}
    for i, stem in enumerate(("baby", "bird")):
        members[f"benchmark/Set2/HR/{stem}.png"] = png_bytes(24, 24, i)
        members[f"benchmark/Set2/LR_bicubic/X2/{stem}x2.png"] = png_bytes(12, 12, 10 + i)
    members["benchmark/Set2/bin/junk.pt"] = b"not extracted"
    return make_tar(members)


@pytest.fixture
def tiny_catalog(monkeypatch):
    """A two-image set in the catalog, downloaded from wherever --mirror points."""
    def install(md5: str | None):
        ds = catalog.DataSet(
            "Tiny", "two images", folders=(catalog.Folder("Set2/HR", 2), catalog.Folder("Set2/LR_bicubic/X2", 2)),
            base_url="http://unused.invalid/", eval_sets=(catalog.EvalSet("Set2", "Set2", 2),),
            downloads=(catalog.Download("bench.tar", (("benchmark/Set2/HR", "Set2/HR"),
                                                      ("benchmark/Set2/LR_bicubic", "Set2/LR_bicubic")),
                                        md5=md5, max_unpacked=10 ** 6),))
        monkeypatch.setattr(catalog, "DATASETS", (*catalog.DATASETS, ds))
    return install


def test_fetch_command_downloads_unpacks_and_skips_when_complete(server, tmp_path, tiny_catalog, capsys):
    data = _bench_tar()
    server.files["/mirror/bench.tar"] = data
    tiny_catalog(hashlib.md5(data).hexdigest())
    root = tmp_path / "data"
    args = ["data", "fetch", "tiny", "--root", str(root), "--mirror", server.url + "/mirror/", "--quiet"]
    assert main(args) == 0
    assert tree(root) == ["Set2", "Set2/HR", "Set2/HR/baby.png", "Set2/HR/bird.png", "Set2/LR_bicubic",
                          "Set2/LR_bicubic/X2", "Set2/LR_bicubic/X2/babyx2.png", "Set2/LR_bicubic/X2/birdx2.png"]
    assert "Tiny: 1 download(s), 4 file(s) written" in capsys.readouterr().out
    assert main(args) == 0  # complete: nothing fetched again
    assert len(server.requests) == 1
    assert "1 already there" in capsys.readouterr().out


def test_fetch_command_checksum_mismatch_is_one_line(server, tmp_path, tiny_catalog, capsys):
    server.files["/bench.tar"] = _bench_tar()
    tiny_catalog("0" * 32)
    root = tmp_path / "data"
    assert main(["data", "fetch", "Tiny", "--root", str(root), "--mirror", server.url, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: checksum mismatch for bench.tar") and err.count("\n") == 1
    assert tree(root) == []


@pytest.mark.parametrize("kind", ["archive", "files"])
def test_fetch_command_offline_fails_at_once_and_leaves_nothing(tmp_path, monkeypatch, capsys, kind):
    """Offline (a name that does not resolve): one line within seconds, and no data root,
    .downloads or set folder left behind (RealSRSet's files go to RealSRSet/LR)."""
    if kind == "archive":
        downloads = (catalog.Download("bench.tar", (("benchmark/Set2/HR", "Set2/HR"),), md5="0" * 32,
                                      max_unpacked=10 ** 6),)
    else:
        downloads = (catalog.Download("a.png", dest="Files/LR", sha256="0" * 64),)
    ds = catalog.DataSet("Tiny", "two images", folders=(catalog.Folder("Set2/HR", 2),),
                         base_url="http://nonexistent.invalid/", downloads=downloads)
    monkeypatch.setattr(catalog, "DATASETS", (*catalog.DATASETS, ds))
    root = tmp_path / "r" / "data"
    t0 = time.monotonic()
    assert main(["data", "fetch", "tiny", "--root", str(root), "--quiet"]) == 2
    assert time.monotonic() - t0 < 5
    err = capsys.readouterr().err
    assert err.startswith("error: cannot resolve nonexistent.invalid") and err.count("\n") == 1
    assert tree(tmp_path) == []


def test_fetch_command_bad_input(tmp_path, capsys):
    assert main(["data", "fetch", "DIV2K-tain", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == ("error: unknown data set 'DIV2K-tain' (known: DIV2K-train, DIV2K-valid, Flickr2K, benchmark, "
                   "Manga109, RealSRSet)\n")
    assert main(["data", "fetch", "manga109", "--root", str(tmp_path)]) == 2
    assert "Manga109 cannot be downloaded" in capsys.readouterr().err
    assert main(["data", "fetch", "benchmark", "--root", str(tmp_path), "--mirror", "ftp://x"]) == 2
    assert "--mirror must be an http:// or https:// address" in capsys.readouterr().err
    assert tree(tmp_path) == []


def test_catalog_urls_and_checksums():
    """The table's addresses are the public ones; archives carry the published MD5,
    RealSRSet's files a SHA-256 each."""
    div2k = catalog.find_dataset("DIV2K-valid")
    assert [d.path for d in div2k.downloads] == ["DIV2K_valid_HR.zip"] + [
        f"DIV2K_valid_LR_bicubic_X{s}.zip" for s in (2, 3, 4)]
    assert div2k.base_url == "http://data.vision.ee.ethz.ch/cvl/DIV2K/"
    assert catalog.find_dataset("set14").downloads[0].path == "benchmark.tar"
    for ds in catalog.all_datasets():
        for d in ds.downloads:
            assert (d.md5 and len(d.md5) == 32) or (d.sha256 and len(d.sha256) == 64), d
            assert d.max_unpacked or not d.is_archive
    real = catalog.find_dataset("RealSRSet")
    assert len(real.downloads) == 20 and real.images == 20


def test_fetch_plain_files_keeps_a_differing_existing_one(server, tmp_path, monkeypatch, capsys):
    """Sets of single files (RealSRSet): each checked by its SHA-256; a file already there
    that differs is kept and reported, never replaced without --overwrite."""
    files = {"a.png": png_bytes(16, 16, 1), "b.png": png_bytes(16, 16, 2)}
    for name, data in files.items():
        server.files[f"/lr/{name}"] = data
    ds = catalog.DataSet("Files", "two files", folders=(catalog.Folder("Files/LR", 2, tuple(files)),),
                         base_url="http://unused.invalid/",
                         downloads=tuple(catalog.Download(n, dest="Files/LR", sha256=hashlib.sha256(d).hexdigest())
                                         for n, d in files.items()))
    monkeypatch.setattr(catalog, "DATASETS", (*catalog.DATASETS, ds))
    root = tmp_path / "data"
    (root / "Files/LR").mkdir(parents=True)
    (root / "Files/LR/a.png").write_bytes(b"mine")
    assert main(["data", "fetch", "files", "--root", str(root), "--mirror", server.url + "/lr", "--quiet"]) == 0
    out = capsys.readouterr()
    assert "a.png: exists and differs from the source; kept (--overwrite replaces it)" in out.err
    assert (root / "Files/LR/a.png").read_bytes() == b"mine"
    assert (root / "Files/LR/b.png").read_bytes() == files["b.png"]
    assert main(["data", "fetch", "files", "--root", str(root), "--mirror", server.url + "/lr", "--quiet",
                 "--overwrite"]) == 0
    assert (root / "Files/LR/a.png").read_bytes() == files["a.png"]

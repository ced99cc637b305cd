"""``ciaosr serve``'s HTTP API through Starlette's test client: upload, run, progress,
cancel, download, every limit and bad input, and the command itself.

Models: the tiny random-weight CiaoSR of ``conftest.tiny_model_file``, offered as a
file of ``--models-dir`` (fast); the browser test runs the shipped model. Expected
results come from ``ciaosr.upscale`` (the Python API: PIL in, PIL out) and expected
messages from the validation functions themselves, called here with the same values.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette", reason="the web extra is not installed (pip install \"ciaosr[web]\")")
from starlette.testclient import TestClient  # noqa: E402

import ciaosr  # noqa: E402
from ciaosr.errors import CiaosrError  # noqa: E402
from ciaosr.geometry import Resize  # noqa: E402
from ciaosr.inference.tiling import MAX_AUTO_TILE  # noqa: E402
from ciaosr.imageio.codecs import png_chunk  # noqa: E402
from ciaosr.runtime import Precision  # noqa: E402
from ciaosr.serve import jobs as jobs_module  # noqa: E402
from ciaosr.serve.app import create_app  # noqa: E402
from ciaosr.serve.catalogue import Catalogue  # noqa: E402
from ciaosr.serve.jobs import JobQueue  # noqa: E402
from ciaosr.serve.limits import Limits  # noqa: E402

import torch  # noqa: E402

WRITE = {"X-Ciaosr": "1"}
REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------
@pytest.fixture
def models_dir(tmp_path, tiny_model_file) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(tiny_model_file, folder / "tiny.safetensors")
    return folder


@contextmanager
def serve(models_dir=None, start=True, **limits):
    """A test client of a fresh app (its queue's files deleted on leaving)."""
    queue = JobQueue(Catalogue(models_dir), Limits(**limits), torch.device("cpu"), start=start)
    app = create_app(queue=queue)
    with TestClient(app, base_url="http://localhost") as client:
        yield client, queue
    assert not queue.root.exists()  # the app's shutdown deleted every file


def image_bytes(w=24, h=20, fmt="PNG", mode="RGB", seed=0, **save) -> bytes:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx / w, yy / h, (xx + yy) / (w + h)], -1) * 200 + rng.integers(0, 40, (h, w, 3))
    img = Image.fromarray(base.astype(np.uint8)).convert(mode)
    buf = io.BytesIO()
    img.save(buf, fmt, **save)
    return buf.getvalue()


def png_header(w: int, h: int) -> bytes:
    """A PNG whose header says w x h (RGB, 8-bit) with a few bytes of pixel data."""
    ihdr = png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + ihdr + png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + png_chunk(b"IEND", b"")


def post(client, body, **params):
    params.setdefault("name", "photo.png")
    params.setdefault("scale", "2")
    params.setdefault("model", "tiny.safetensors")
    return client.post("/api/jobs", params=params, content=body, headers=WRITE)


def wait(client, job_id, states=("done", "failed", "cancelled"), timeout=60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = client.get(f"/api/jobs/{job_id}").json()
        if status.get("state") in states or time.monotonic() > deadline:
            return status
        time.sleep(0.02)


def message(fn, *args) -> str:
    """The message of the CiaosrError ``fn(*args)`` raises (what the CLI prints)."""
    with pytest.raises(CiaosrError) as info:
        fn(*args)
    return str(info.value)


def error_of(response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    text = response.json()["error"]
    assert "\n" not in text and "Traceback" not in text
    return text


# --------------------------------------------------------------------------------------
# The page and the catalogue
# --------------------------------------------------------------------------------------
def test_the_page_is_a_fixed_set_of_files(models_dir):
    with serve(models_dir) as (client, _):
        page = client.get("/")
        assert page.status_code == 200 and "<title>ciaosr" in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert client.get("/static/app.js").status_code == 200
        assert client.get("/static/style.css").status_code == 200
        for path in ("/static/../jobs.py", "/static/jobs.py", "/static/%2e%2e/app.py", "/static/index.html/..",
                     "/etc/passwd", "/static//etc/passwd"):
            assert client.get(path).status_code == 404, path


def test_models_are_the_shipped_ones_and_the_folder_files_by_name(models_dir):
    shutil.copy(models_dir / "tiny.safetensors", models_dir / "other.pth")
    (models_dir / "notes.txt").write_text("not a model")
    (models_dir / ".hidden.safetensors").write_bytes(b"x")
    (models_dir / "sub.safetensors").mkdir()
    with serve(models_dir) as (client, _):
        models = client.get("/api/config").json()["models"]
    assert [(m["id"], m["source"], m["default"]) for m in models] == [
        (name, "shipped", name == "edsr-baseline-liif") for name in ciaosr.list_models(pretrained=True)
    ] + [("other.pth", "folder", False), ("tiny.safetensors", "folder", False)]


@pytest.mark.parametrize("model", [
    "nope", "tiny", "../models/tiny.safetensors", "models/tiny.safetensors", "/etc/passwd", "..", ".",
    ".hidden.safetensors", "tiny.safetensors/", "tiny.safetensors\0", "sub.safetensors", "notes.txt",
    "edsr-baseline-ciaosr",  # a model without shipped weights
    "ABSOLUTE",  # the real file, by its absolute path
])
def test_unknown_and_path_like_model_names_are_refused(models_dir, model):
    (models_dir / ".hidden.safetensors").write_bytes(b"x")
    (models_dir / "sub.safetensors").mkdir()
    (models_dir / "notes.txt").write_text("x")
    if model == "ABSOLUTE":
        model = str(models_dir / "tiny.safetensors")
    with serve(models_dir) as (client, queue):
        text = error_of(post(client, image_bytes(), model=model), 400)
        assert text.startswith("unknown model") and "choose one of: edsr-baseline-liif, tiny.safetensors" in text
        assert not any(queue.root.iterdir())  # nothing was kept


# --------------------------------------------------------------------------------------
# A job from upload to download
# --------------------------------------------------------------------------------------
def test_upload_run_progress_and_download_give_the_api_result(models_dir):
    body = image_bytes(40, 30)
    with serve(models_dir) as (client, queue):
        r = post(client, body, name="C:\\photos\\holiday.png", scale="2.5", tile="16")
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["state"] in ("queued", "running") and job["position"] in (0, 1)
        assert job["input"] == {"width": 40, "height": 30}
        assert job["output"]["width"] == 100 and job["output"]["height"] == 75
        assert job["output"]["name"] == "holiday_x2.5.png"  # the CLI's naming rule; no path kept
        seen = []
        deadline = time.monotonic() + 60
        while (s := client.get(f"/api/jobs/{job['id']}").json())["state"] not in ("done", "failed"):
            if s["progress"]:
                seen.append(s["progress"]["tiles_done"])
            assert time.monotonic() < deadline
            time.sleep(0.005)
        assert s["state"] == "done", s
        p = s["progress"]
        assert p["tiles_total"] > 1 and p["tiles_done"] == p["tiles_total"] and p["fraction"] == 1
        assert seen == sorted(seen)
        assert s["seconds"] > 0 and s["output"]["bytes"] > 0 and s["position"] is None
        # What the page shows: the input (PNG) and the result at the same display size.
        shown = Image.open(io.BytesIO(client.get(f"/api/jobs/{job['id']}/input").content))
        assert shown.size == (40, 30)
        assert client.get(f"/api/jobs/{job['id']}/preview").headers["content-type"] == "image/png"
        folder = queue.get(job["id"]).folder
        got = client.get(f"/api/jobs/{job['id']}/result")
        assert got.status_code == 200
        assert got.headers["content-disposition"] == 'attachment; filename="holiday_x2.5.png"'
        # The download deletes the job and its files.
        assert not folder.exists()
        assert "no such job" in error_of(client.get(f"/api/jobs/{job['id']}"), 404)
        assert client.get(f"/api/jobs/{job['id']}/result").status_code == 404
        assert not any(queue.root.iterdir())
    result = Image.open(io.BytesIO(got.content))
    expect = ciaosr.upscale(Image.open(io.BytesIO(body)), scale=2.5, model=str(models_dir / "tiny.safetensors"),
                            tile=16, device="cpu")
    assert result.size == expect.size == (100, 75)
    assert np.array_equal(np.asarray(result), np.asarray(expect))


def test_formats_bit_depth_and_metadata_follow_the_cli(models_dir):
    from PIL import ImageCms

    from ciaosr.imageio import decode_png16

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    jpeg = image_bytes(24, 20, "JPEG", quality=95, icc_profile=profile, dpi=(300, 300), exif=exif.tobytes())
    with serve(models_dir) as (client, _):
        done = wait(client, post(client, jpeg, name="cam.jpg").json()["id"])
        assert (done["output"]["format"], done["output"]["bit_depth"], done["output"]["name"]) == ("JPEG", 8, "cam_x2.jpg")
        out = Image.open(io.BytesIO(client.get(f"/api/jobs/{done['id']}/result").content))
        assert out.format == "JPEG" and out.size == (48, 40)
        assert out.info["icc_profile"] == profile and tuple(round(v) for v in out.info["dpi"]) == (300, 300)
        assert out.getexif()[0x010F] == "TestCam"

        done = wait(client, post(client, jpeg, name="cam.jpg", format="png16").json()["id"])
        assert (done["output"]["format"], done["output"]["bit_depth"], done["output"]["name"]) == ("PNG", 16, "cam_x2.png")
        blob = client.get(f"/api/jobs/{done['id']}/result").content
        assert blob[24] == 16  # the IHDR's bit depth
        data = decode_png16(blob)
        assert data.shape == (40, 48, 3) and data.dtype == np.uint16

        # A TIFF result: the download is TIFF, the page gets a PNG of it.
        tiff = image_bytes(24, 20, "TIFF")
        done = wait(client, post(client, tiff, name="scan.tif", scale="", size="x30").json()["id"])
        assert done["state"] == "done" and (done["output"]["width"], done["output"]["height"]) == (36, 30)
        assert done["output"]["name"] == "scan_36x30.tif"  # the size in full, not scan_x30.tif
        assert client.get(f"/api/jobs/{done['id']}/preview").headers["content-type"] == "image/png"
        got = client.get(f"/api/jobs/{done['id']}/result")
        assert got.headers["content-type"] == "image/tiff" and Image.open(io.BytesIO(got.content)).size == (36, 30)


# --------------------------------------------------------------------------------------
# Queue and cancel
# --------------------------------------------------------------------------------------
def test_queue_positions_and_cancelling_a_waiting_job(models_dir):
    with serve(models_dir, start=False, max_queue=2) as (client, queue):
        a, b = (post(client, image_bytes(seed=i)).json() for i in (1, 2))
        assert (a["position"], b["position"]) == (1, 2)
        assert "queue is full" in error_of(post(client, image_bytes()), 503)
        assert "X-Ciaosr" in error_of(client.delete(f"/api/jobs/{a['id']}"), 403)
        folder = queue.get(a["id"]).folder
        gone = client.delete(f"/api/jobs/{a['id']}", headers=WRITE).json()
        assert gone["state"] == "cancelled" and not folder.exists()
        assert client.get(f"/api/jobs/{b['id']}").json()["position"] == 1
        assert "no result" in error_of(client.get(f"/api/jobs/{b['id']}/result"), 409)
        queue.start()
        assert wait(client, b["id"])["state"] == "done"


def test_cancelling_a_running_job_stops_it_between_chunks(models_dir, monkeypatch):
    reached, go = threading.Event(), threading.Event()
    real = jobs_module.upscale_data

    def held_after_the_first_tile(*args, on_progress, **kwargs):
        def report(p):
            on_progress(p)
            if p.tiles_done == 1:
                reached.set()
                go.wait(30)
        return real(*args, on_progress=report, **kwargs)

    monkeypatch.setattr(jobs_module, "upscale_data", held_after_the_first_tile)
    with serve(models_dir) as (client, queue):
        job = post(client, image_bytes(48, 40), tile="16").json()
        assert reached.wait(60)
        running = client.get(f"/api/jobs/{job['id']}").json()
        assert running["state"] == "running" and running["position"] == 0 and running["phase"] == "upscaling"
        folder = queue.get(job["id"]).folder
        assert client.delete(f"/api/jobs/{job['id']}", headers=WRITE).status_code == 200
        go.set()
        stopped = wait(client, job["id"])
        assert stopped["state"] == "cancelled"
        assert stopped["progress"]["tiles_done"] == 1 < stopped["progress"]["tiles_total"]
        assert not folder.exists()


def test_finished_jobs_are_deleted_after_the_timeout(models_dir):
    with serve(models_dir, keep_seconds=60) as (client, queue):
        job = wait(client, post(client, image_bytes()).json()["id"])
        folder = queue.get(job["id"]).folder
        assert queue.sweep(time.monotonic() + 30) == 0 and folder.exists()
        assert queue.sweep(time.monotonic() + 61) == 1 and not folder.exists()
        assert client.get(f"/api/jobs/{job['id']}/result").status_code == 404


# --------------------------------------------------------------------------------------
# Limits and bad input: the command line's messages
# --------------------------------------------------------------------------------------
def frames_gif() -> bytes:
    frames = [Image.new("RGB", (8, 8), c) for c in ("red", "blue")]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    return buf.getvalue()


@pytest.mark.parametrize("body,expect", [
    (b"hello, not an image", "photo.png: not an image (unrecognised or unsupported format)"),
    (image_bytes(64, 64)[:300], "photo.png: truncated or corrupt image"),
    (png_header(30000, 30000), "photo.png: image too large to open safely"),  # Pillow's bomb check
    (png_header(5000, 4000), "photo.png: image of 5000x4000 has 20,000,000 pixels, over the limit of 16,777,216"),
    (frames_gif(), "photo.png: has 2 frames (animated or multi-page)"),
    (b"", "no image: send the image file as the request body"),
])
def test_bad_images_are_refused_with_the_readers_message(models_dir, body, expect):
    with serve(models_dir) as (client, queue):
        text = error_of(post(client, body), 400)
        assert text.startswith(expect)
        assert str(queue.root) not in text  # no server path in messages
        assert not any(queue.root.iterdir())


def test_upload_and_output_limits(models_dir):
    with serve(models_dir, max_upload_bytes=2000, max_pixels=5000) as (client, queue):
        big = image_bytes(64, 64)
        assert len(big) > 2000
        assert "upload limit of 2,000 bytes" in error_of(post(client, big), 413)
        chunks = (big[i:i + 500] for i in range(0, len(big), 500))  # no Content-Length: counted as it comes
        assert "upload limit" in error_of(post(client, chunks), 413)
        small = image_bytes(24, 20)
        text = error_of(post(client, small, scale="10"), 400)
        assert text == message(Resize.parse("10").output_size, (20, 24), 5000, "this server's limit: ask for a "
                                                                              "smaller output")
        assert text == "output 240x200 has 48,000 pixels, over the limit of 5,000 (this server's limit: ask for a smaller output)"
        assert client.get("/api/size", params={"width": 24, "height": 20, "scale": "10"}).json()["error"] == text
        assert not any(queue.root.iterdir())


@pytest.mark.parametrize("params,expected", [
    ({"scale": "abc"}, lambda: message(Resize.parse, "abc")),
    ({"scale": "0"}, lambda: message(Resize.parse, "0")),
    ({"scale": "-2"}, lambda: message(Resize.parse, "-2")),
    ({"scale": "2", "size": "100x"}, lambda: message(Resize.parse, "2", "100x")),
    ({"scale": "", "size": "12.5x3"}, lambda: message(Resize.parse, None, "12.5x3")),
    ({"scale": ""}, lambda: message(Resize.parse, None, None)),
    ({"precision": "fp16"}, lambda: message(Precision.for_device, "fp16", torch.device("cpu"))),
    ({"precision": "fp64"}, lambda: message(Precision.for_device, "fp64", torch.device("cpu"))),
    ({"tile": "4"}, lambda: "--tile must be a whole number of at least 8 LR pixels, got 4"),
    ({"tile": "big"}, lambda: "--tile must be a whole number of at least 8 LR pixels, got big"),
    ({"tile": "100000"}, lambda: f"--tile must be at most {MAX_AUTO_TILE} LR pixels here, got 100000"),
    ({"format": "gif"}, lambda: "format must be one of input, png8, png16, got 'gif'"),
    ({"path": "/tmp/x"}, lambda: "unknown parameter 'path' (known: name, model, scale, size, precision, tile, "
                                 "format)"),
])
def test_bad_settings_get_the_cli_messages(models_dir, params, expected):
    with serve(models_dir) as (client, queue):
        assert error_of(post(client, image_bytes(), **params), 400) == expected()
        assert not any(queue.root.iterdir())


def test_a_tile_larger_than_the_model_allows_fails_the_job(models_dir):
    from ciaosr.inference.tiling import auto_tile

    largest = auto_tile(ciaosr.load_model(str(models_dir / "tiny.safetensors")), "cpu")
    with serve(models_dir) as (client, _):
        job = wait(client, post(client, image_bytes(), tile=str(largest + 8)).json()["id"])
    assert job["state"] == "failed"
    assert job["error"] == f"--tile must be at most {largest} LR pixels here, got {largest + 8}"


def test_requests_need_the_write_header_and_a_loopback_host(models_dir):
    with serve(models_dir) as (client, _):
        r = client.post("/api/jobs", params={"scale": "2"}, content=image_bytes())
        assert "X-Ciaosr: 1" in error_of(r, 403)
        assert "localhost" in error_of(client.get("/api/config", headers={"host": "evil.example:8000"}), 400)
        assert client.get("/api/config", headers={"host": "127.0.0.1:8000"}).status_code == 200
        assert client.get("/api/config", headers={"host": "[::1]:8000"}).status_code == 200
        assert client.get("/api/jobs/..%2F..%2Fetc%2Fpasswd").status_code == 404
        assert "no such job" in error_of(client.get("/api/jobs/nonexistent/input"), 404)
        assert "whole numbers" in error_of(client.get("/api/size", params={"width": "x", "height": 3}), 400)


# --------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------
def test_serve_without_the_web_extra_says_how_to_install_it(monkeypatch, capsys):
    from ciaosr.cli.main import main

    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn -> ModuleNotFoundError
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err == 'error: the web page needs the web extra: pip install "ciaosr[web]"\n'


def test_serve_refuses_a_busy_port_and_a_bad_folder_in_one_line(tmp_path, capsys):
    import socket

    from ciaosr.cli.main import main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert main(["serve", "--port", str(port), "--threads", "1"]) == 2
    assert capsys.readouterr().err.startswith(f"error: cannot listen on 127.0.0.1:{port} (")
    assert main(["serve", "--port", "0", "--threads", "1", "--models-dir", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err == f"error: --models-dir {tmp_path / 'none'}: not a folder\n"
    assert main(["serve", "--port", "0", "--threads", "1", "--max-queue", "0"]) == 2
    assert capsys.readouterr().err == "error: --max-queue must be at least 1, got 0\n"
    assert main(["serve", "--port", "0", "--threads", "1", "--max-upload-mb", "0"]) == 2
    assert capsys.readouterr().err == "error: --max-upload-mb must be positive, got 0\n"
    # An address of no interface here (TEST-NET-1): binding fails locally, nothing is sent.
    assert main(["serve", "--host", "192.0.2.1", "--port", "0", "--threads", "1"]) == 2
    assert capsys.readouterr().err == "error: cannot listen on 192.0.2.1:0 (Cannot assign requested address)\n"


def test_the_command_serves_on_localhost_and_stops(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1", TMPDIR=str(tmp))
    proc = subprocess.Popen([sys.executable, "-m", "ciaosr", "serve", "--port", "0", "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        import select

        assert select.select([proc.stdout], [], [], 120)[0], "no output in 120 s"
        line = proc.stdout.readline()  # "ciaosr serve: http://127.0.0.1:PORT/ (...)"
        assert line.startswith("ciaosr serve: http://127.0.0.1:"), (line, proc.stderr.read() if proc.poll() else "")
        url = line.split()[2]
        import httpx2 as httpx

        deadline = time.monotonic() + 30
        while True:
            try:
                config = httpx.get(url + "api/config", timeout=5).json()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert config["models"][0]["id"] == "edsr-baseline-liif" and config["device"] == "cpu"
        assert [p.name[:13] for p in tmp.iterdir()] == ["ciaosr-serve-"]  # its files' root
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C: a graceful stop
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and out.strip().endswith("ciaosr serve: stopped") and err == "", (out, err)
    assert not any(tmp.iterdir())  # deleted on the way out

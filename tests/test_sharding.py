"""Work split over processes: the balanced assignment (``ciaosr.sharding``), the process
group's helpers (``ciaosr.distributed``), and ``torchrun -m ciaosr upscale`` /
``torchrun -m ciaosr eval`` with two gloo processes on the CPU against one process."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from PIL import Image

import ciaosr
from ciaosr import runtime
from ciaosr.cli.main import main
from ciaosr.decoders import gemm
from ciaosr.distributed import DistInfo, ShardGroup, device_for, dist_info_from_env
from ciaosr.errors import CiaosrError
from ciaosr.geometry import Resize
from ciaosr.imageio import image_size, read_image
from ciaosr.inference.batch import Job, output_pixels
from ciaosr.sharding import balance

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------
# the balanced assignment
# --------------------------------------------------------------------------------------
def _best_makespan(costs, parts: int) -> float:
    """The optimum, by trying every assignment (small inputs only)."""
    best = float("inf")
    for assign in itertools.product(range(parts), repeat=len(costs)):
        loads = [0.0] * parts
        for c, p in zip(costs, assign):
            loads[p] += c
        best = min(best, max(loads))
    return best


@pytest.mark.parametrize("seed", range(6))
def test_balance_is_a_partition_within_graham_bound(seed):
    rng = np.random.default_rng(seed)
    costs = [int(c) for c in rng.integers(1, 10_000, size=int(rng.integers(1, 9)))]
    for parts in (1, 2, 3):
        shares = balance(costs, parts)
        assert len(shares) == parts
        assert sorted(i for s in shares for i in s) == list(range(len(costs)))
        assert all(s == sorted(s) for s in shares)
        makespan = max(sum(costs[i] for i in s) for s in shares)
        best = _best_makespan(costs, parts)
        assert makespan <= (4 / 3 - 1 / (3 * parts)) * best + 1e-9  # Graham's bound for LPT
        assert balance(list(costs), parts) == shares  # nothing but the costs decides


def test_balance_examples():
    # LPT by hand: 8 -> p0, 7 -> p1, 6 -> p1 (7 < 8), 5 -> p0 (8 < 13), 4 -> p0 (13 = 13: lowest part)
    assert balance([5, 8, 4, 7, 6], 2) == [[0, 1, 2], [3, 4]]
    assert balance([1, 1, 1, 1], 2) == [[0, 2], [1, 3]]  # equal costs: index order, alternating
    assert balance([3, 0, 0], 3) == [[0], [1], [2]]  # equal totals: fewer items first
    assert balance([], 2) == [[], []]
    assert balance([2, 2], 4) == [[0], [1], [], []]  # more processes than items: some idle
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError):
            balance([1], bad)
    with pytest.raises(ValueError):
        balance([1, float("nan")], 2)


# --------------------------------------------------------------------------------------
# ciaosr.distributed without a launcher
# --------------------------------------------------------------------------------------
def test_dist_info_from_env(monkeypatch):
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    assert dist_info_from_env() == DistInfo(0, 0, 1, 1)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert dist_info_from_env() == DistInfo(3, 1, 4, 2)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "5")
    with pytest.raises(CiaosrError, match="bad distributed setting"):
        dist_info_from_env()


def test_device_per_process(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    info = DistInfo(rank=3, local_rank=1, world_size=4, local_world_size=2)
    assert device_for("auto", info) == torch.device("cuda", 1)
    assert device_for("cuda:0", info) == torch.device("cuda", 1)
    assert device_for("cpu", info) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert device_for("auto", info) == torch.device("cpu")


def test_threads_shared_among_a_machines_processes(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setattr(runtime, "others_busy", lambda *a: 2.4)  # other jobs keep 2.4 cores busy
    assert runtime.free_cores(processes=2) == 3  # (8 - 2) // 2
    assert runtime.free_cores(processes=16) == 1
    assert runtime.set_threads(None, processes=4) == 2  # the cores // processes
    assert runtime.set_threads("auto", processes=3) == 2
    assert runtime.set_threads("3", processes=4) == 3  # a number is per process
    monkeypatch.setattr(runtime, "_INITIAL_THREADS", 1)  # OMP_NUM_THREADS=1, as torchrun sets
    assert runtime.free_cores(processes=1) == 1
    assert runtime.free_cores(processes=2) == 3


def test_one_process_group_runs_everything_locally():
    group = ShardGroup()
    assert group.map(4, lambda i: i * i) == [0, 1, 4, 9]
    assert group.share(3, lambda i: 1 / 0) == [0, 1, 2]  # one process: costs are not measured
    seen = []
    with group.results(3, lambda i, v: seen.append((i, v))) as results:
        for i in (2, 0, 1):
            results.put(i, f"r{i}")
        assert seen == [(2, "r2"), (0, "r0"), (1, "r1")]  # at once, in the order put
        assert results.gather() == ["r0", "r1", "r2"]
    assert group.announce(7) == 7
    group.close()


def test_results_reach_rank_0_through_the_store():
    """Two ranks' groups over one in-memory store: rank 1's results, put late from another
    thread, reach rank 0 (on_result as they arrive, gather in index order); rank 1 gets
    rank 0's announcement, waiting for it."""
    store = dist.HashStore()
    g0 = ShardGroup(DistInfo(0, 0, 2, 2), store)
    g1 = ShardGroup(DistInfo(1, 1, 2, 2), store)
    seen = []
    with g0.results(4, lambda i, v: seen.append(i)) as r0, g1.results(4) as r1:
        assert r1.gather() is None  # not rank 0: nothing to wait for

        def rank1():
            time.sleep(0.3)
            r1.put(3, {"psnr": 3.0})
            r1.put(1, {"psnr": 1.0})

        worker = threading.Thread(target=rank1)
        worker.start()
        r0.put(0, {"psnr": 0.0})
        r0.put(2, {"psnr": 2.0})
        assert r0.gather() == [{"psnr": float(i)} for i in range(4)]
        worker.join()
    assert sorted(seen) == [0, 1, 2, 3]
    got = []
    waiter = threading.Thread(target=lambda: got.append(g1.announce()))
    waiter.start()
    time.sleep(0.2)
    assert not got  # still waiting for rank 0
    assert g0.announce((1, "two")) == (1, "two")
    waiter.join(timeout=10)
    assert got == [(1, "two")]


def test_map_share_and_same_items_over_two_processes(monkeypatch):
    """Rank 0 of two, the other process played by a stand-in for the gather."""
    peer: dict = {}

    def all_gather_object(out, obj):  # what torch.distributed gives: [rank 0's, rank 1's]
        out[0], out[1] = obj, peer["value"](obj)
    monkeypatch.setattr(dist, "all_gather_object", all_gather_object)
    group = ShardGroup(DistInfo(0, 0, 2, 2), dist.HashStore())

    fn = [10, 11, 12, 13, 14].__getitem__
    peer["value"] = lambda mine: [fn(i) for i in range(1, 5, 2)]  # rank 1 computes items 1 and 3
    assert group.map(5, fn) == [10, 11, 12, 13, 14]
    costs = [5, 8, 4, 7, 6]
    peer["value"] = lambda mine: [costs[i] for i in range(1, 5, 2)]
    assert group.share(5, costs.__getitem__) == balance(costs, 2)[0] == [0, 1, 2]
    peer["value"] = lambda mine: mine  # the same list of items
    group.same_items(["a.png", "b.png"])
    peer["value"] = lambda mine: "another digest"  # a folder changed while they listed it
    with pytest.raises(CiaosrError, match="the processes found different images"):
        group.same_items(["a.png", "b.png"])


def test_output_pixels_from_the_header_upright(tmp_path):
    arr = np.zeros((6, 10, 3), np.uint8)
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # stored 10 wide, shown 6 wide
    path = tmp_path / "o.jpg"
    im.save(path, exif=exif)
    assert image_size(path) == (6, 10)
    data = read_image(path)
    assert image_size(path, upright=True) == (data.height, data.width) == (10, 6)
    resize = Resize.parse("2x3", None)  # width x2, height x3
    h, w = resize.output_size((data.height, data.width))
    assert output_pixels(Job(path, tmp_path / "x.jpg"), resize) == h * w == 30 * 12
    (tmp_path / "bad.png").write_bytes(b"not an image")
    assert output_pixels(Job(tmp_path / "bad.png", tmp_path / "y.png"), resize) == 0
    with pytest.raises(CiaosrError, match="cannot read image"):
        image_size(tmp_path / "bad.png")


# --------------------------------------------------------------------------------------
# torchrun: two gloo processes against one process
# --------------------------------------------------------------------------------------
@pytest.fixture
def one_product_library(monkeypatch):
    """The same CPU product library in this process and in every torchrun worker: each
    process otherwise picks the faster of BLAS and oneDNN by a timed probe, which on a busy
    machine can pick differently and move outputs in their last bit (``decoders.gemm``)."""
    monkeypatch.setenv(gemm.ENV, "blas")
    gemm.reset()
    yield
    monkeypatch.delenv(gemm.ENV)
    gemm.reset()


def _torchrun(*args: str, wait: bool = True):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "ciaosr",
           *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    if not wait:
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def _images(folder: Path, sizes, seed: int = 0) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for k, (h, w) in enumerate(sizes):
        # smooth shapes with some noise: like a photo, unlike pure noise
        y, x = np.mgrid[0:h, 0:w]
        base = np.stack([128 + 100 * np.sin((x + k) / 5), 128 + 100 * np.cos(y / 4), (x * y) % 256], -1)
        arr = np.clip(base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(folder / f"img{k}.png")


def _files(folder: Path) -> dict[str, bytes]:
    """The visible files below ``folder`` (a killed write may leave a hidden temporary)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if not p.name.startswith(".")}


def _report(out: str, err: str) -> list[str]:
    """The end-of-run report lines (per-image lines come in the order images finish),
    without what torchrun itself logs after them (W1130 ..., its traceback)."""
    err = re.split(r"^(?:[WEI]\d{4} |Traceback)", err, maxsplit=1, flags=re.M)[0]
    return [ln for ln in (out + err).splitlines() if ln.startswith(("done:", "skipped", "  ", "error:"))]


def test_torchrun_upscale_matches_one_process_and_resumes_after_a_kill(tmp_path, capsys, one_product_library):
    """Two processes give the files (byte for byte) and the report of one process; a run
    stopped half-way finishes with --skip-existing, reporting what one process reports
    from the same half-done folder."""
    src, out, ref, alone = tmp_path / "in", tmp_path / "out", tmp_path / "ref", tmp_path / "alone"
    _images(src, [(48, 56), (40, 64), (56, 40), (48, 48), (64, 36), (44, 52), (52, 44), (40, 40)])
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")  # fails in every run
    args = ["upscale", str(src), "--scale", "2", "--threads", "1"]
    assert main([*args, "-o", str(ref)]) == 1
    capsys.readouterr()

    proc = _torchrun(*args, "-o", str(out), wait=False)
    try:
        deadline = time.monotonic() + 90
        while not (out.is_dir() and _files(out)) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, "finished before it could be stopped"
        proc.send_signal(signal.SIGTERM)  # torchrun stops its processes
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    done = _files(out)
    assert 1 <= len(done) < 8, sorted(done)
    shutil.copytree(out, alone)

    assert main([*args, "-o", str(alone), "--skip-existing"]) == 1
    single = capsys.readouterr()
    again = _torchrun(*args, "-o", str(out), "--skip-existing")
    # Some image failed: every process exits with status 1, as one process does, and
    # torchrun reports the job failed (once one has exited it may stop the other, which
    # has printed the report by then).
    assert again.returncode == 1, again.stderr[-2000:]
    assert "exitcode  : 1 " in again.stderr.split("Root Cause")[1], again.stderr[-2000:]
    # torchrun prints its own traceback (and the interpreter's path, which may hold any
    # folder name); no frame of a worker's traceback is in the package's code.
    package_dir = str(Path(ciaosr.__file__).resolve().parent) + os.sep
    assert package_dir not in again.stderr, again.stderr[-2000:]
    assert f"done: {8 - len(done)} written, {len(done)} skipped, 1 failed" in again.stdout
    assert _report(again.stdout, again.stderr) == [ln.replace(str(alone), str(out))
                                                   for ln in _report(single.out, single.err)]
    assert len([ln for ln in again.stdout.splitlines() if " -> " in ln]) == 8 - len(done)  # once each
    assert len(_files(ref)) == 8 and _files(out) == _files(ref) == _files(alone)


def test_torchrun_eval_writes_the_json_of_one_process(tmp_path, capsys, one_product_library):
    _images(tmp_path / "data" / "Syn" / "HR", [(24, 30), (36, 24), (30, 30), (18, 42), (24, 24)], seed=2)
    args = ["eval", "--data-root", str(tmp_path / "data"), "--datasets", "Syn", "--scales", "2", "2.5",
            "--device", "cpu", "--threads", "1"]
    assert main([*args, "--json", str(tmp_path / "one.json")]) == 0
    single = capsys.readouterr().out
    proc = _torchrun(*args, "--json", str(tmp_path / "two.json"), "--save-images", str(tmp_path / "sr"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "two.json").read_bytes() == (tmp_path / "one.json").read_bytes()
    assert proc.stdout == single  # the table, printed once
    report = json.loads((tmp_path / "one.json").read_text())
    assert report["results"]["Syn"]["2.5"]["num_images"] == 5
    assert sorted(p.name for p in (tmp_path / "sr" / "Syn" / "X2").iterdir()) == [f"img{k}.png" for k in range(5)]

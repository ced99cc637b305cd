"""Images per second of ``ciaosr upscale`` on a folder in 1 and 2 processes (torchrun),
and what splitting the folder over processes costs.

The folder is Set14 at x2 as the benchmark defines it: each HR image (shared
``datasets/Set14/HR``) reduced by MATLAB bicubic to half its size, written as PNG; the
command upscales the folder x2 with the default model, one thread per process:

    ciaosr upscale LR/ -o OUT/ --scale 2 --threads 1 --device cpu                # 1 process
    torchrun --standalone --nproc_per_node=2 -m ciaosr upscale LR/ -o OUT/ ...   # 2 processes

Each run is a fresh command (process start, imports and model load included), timed
from outside; the per-image seconds come from the command's own lines. Reported per
process count: wall seconds, images/s, the sum of per-image seconds (``work``), and
the overhead ``wall - work / processes``: start, model load, and for 2 processes also
the wait for the busier process (the split by output pixels is computed here with
``ciaosr.sharding.balance``, as the command does, to give each process's work).
The two outputs are checked to be byte-identical.

    python benchmarks/shard_throughput.py                 # the docs' table (best of --repeat 3)
    python benchmarks/shard_throughput.py --limit 3 --repeat 1   # a quick check that it works
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine_info import cpu_name  # benchmarks/ is the script folder, on sys.path

REPO = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^(?P<src>.+?): \d+x\d+ -> \d+x\d+ .*, (?P<s>[\d.]+) s -> ", re.M)


def make_folder(shared: Path, folder: Path, limit: int | None) -> list[Path]:
    """Set14's LR images at x2 (MATLAB bicubic of the HR, as the benchmark pairs make them)."""
    from ciaosr.data.benchmark import BenchmarkSet
    from ciaosr.imageio import write_tensor_png

    bset = BenchmarkSet(shared / "datasets" / "Set14", 2)
    folder.mkdir(parents=True)
    paths = []
    for i in range(len(bset) if limit is None else min(limit, len(bset))):
        pair = bset[i]
        path = folder / f"{pair.name}.png"
        write_tensor_png(path, pair.lr)
        paths.append(path)
    return paths


def run(processes: int, src: Path, out: Path) -> dict:
    cmd = ["-m", "ciaosr", "upscale", str(src), "-o", str(out), "--scale", "2", "--threads", "1",
           "--device", "cpu"]
    if processes > 1:
        cmd = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", *cmd]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, *cmd], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        sys.exit(f"{processes} process(es) failed:\n{res.stderr[-3000:]}")
    seconds = {Path(m["src"]).name: float(m["s"]) for m in LINE.finditer(res.stdout)}
    return {"wall": wall, "seconds": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", default=os.environ.get("CIAOSR_SHARED", str(REPO.parent / "shared")),
                    help="the shared data folder (default: $CIAOSR_SHARED or ../shared)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N images (a quick check)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per process count; the fastest is kept")
    args = ap.parse_args()

    sys.path.insert(0, str(REPO / "src"))
    import torch

    from ciaosr.geometry import Resize
    from ciaosr.inference.batch import Job, output_pixels
    from ciaosr.sharding import balance

    with tempfile.TemporaryDirectory(prefix="shard-bench-") as tmp:
        tmp = Path(tmp)
        paths = make_folder(Path(args.shared), tmp / "lr", args.limit)
        n = len(paths)
        rows = []
        outputs = {}
        for processes in (1, 2):
            best = None
            for k in range(args.repeat):
                out = tmp / f"out{processes}-{k}"
                got = run(processes, tmp / "lr", out)
                if len(got["seconds"]) != n:
                    sys.exit(f"{processes} process(es): {len(got['seconds'])} image lines, expected {n}")
                outputs[processes] = out
                if best is None or got["wall"] < best["wall"]:
                    best = got
            work = sum(best["seconds"].values())
            # each process's work, by the split the command makes (the same function)
            costs = [output_pixels(Job(p, p), Resize.parse("2", None)) for p in paths]
            per_process = [sum(best["seconds"][paths[i].name] for i in share)
                           for share in balance(costs, processes)]
            row = {"processes": processes, "images": n, "wall_s": round(best["wall"], 2),
                   "images_per_s": round(n / best["wall"], 3), "work_s": round(work, 2),
                   "per_process_work_s": [round(w, 2) for w in per_process],
                   "overhead_s": round(best["wall"] - work / processes, 2)}
            print(json.dumps(row), flush=True)
            rows.append(row)
        a, b = outputs[1], outputs[2]
        names = sorted(p.name for p in a.iterdir())
        same = names == sorted(p.name for p in b.iterdir()) and all(
            filecmp.cmp(a / f, b / f, shallow=False) for f in names)
        print(f"outputs byte-identical: {same}")

    print(f"\n{cpu_name()}, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}; Set14 x2 "
          f"({n} images, LR = MATLAB bicubic of the HR), default model, 1 thread per process, "
          f"best of {args.repeat}\n")
    print("| processes | wall s | images/s | work s (sum of per-image s) | per process work s | overhead s |")
    print("| ---: | ---: | ---: | ---: | --- | ---: |")
    for r in rows:
        print(f"| {r['processes']} | {r['wall_s']:.2f} | {r['images_per_s']:.3f} | {r['work_s']:.2f} | "
              f"{' / '.join(f'{w:.2f}' for w in r['per_process_work_s'])} | {r['overhead_s']:.2f} |")
    if not same:
        sys.exit("the 1- and 2-process outputs differ")


if __name__ == "__main__":
    main()

"""``ciaosr upscale --threads auto`` against fixed 1 and 2 threads, on an idle machine and
beside other jobs.

Each run is the real command in a fresh process (``python -m ciaosr upscale in.png
--scale 4``, default model, CPU) on a synthetic ``--size`` x ``--size`` picture, timed
from outside. The conditions:

* ``idle``: nothing else runs;
* ``busy``: a one-thread job (fp32 matrix products, as a training or another upscale
  would run) runs for the whole command;
* ``just-ended``: that job ran for ``--warm`` seconds and ended right before the command
  started, so the 1-minute load average still counts it (the case where the load average
  chose one thread on an idle machine);
* ``starts-midway``: the job starts ``--midway`` seconds after the command.

With ``auto`` the command also logs each thread count it chose, at the start and at the
re-checks between tiles (``runtime.recheck_threads``). Repeats go
round the settings in turn, so a change in the machine's load falls on all alike.

    python benchmarks/threads_auto.py --size 384 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from machine_info import machine_summary
from upscale_memory import synthetic_image

COMPETITOR = ("import torch\ntorch.set_num_threads(1)\na = torch.rand(512, 512)\n"
              "while True:\n    a = (a @ a).clamp_(0, 1)\n")
CONDITIONS = ("idle", "busy", "just-ended", "starts-midway")

# In the child: log each choice the automatic count makes (runtime.free_cores, at the
# start and at each re-check; repeats of the same count are left out), then run the CLI.
CHILD = """import sys, time
from ciaosr import runtime
real, t0, last = runtime.free_cores, time.monotonic(), []
def logged(*args, **kwargs):
    n = real(*args, **kwargs)
    if last[-1:] != [n]:
        print(f"threads {n} at {time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)
        last.append(n)
    return n
runtime.free_cores = logged
from ciaosr.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def competitor() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", COMPETITOR])


def one_run(src: str, dst: str, threads: str, condition: str, warm: float, midway: float) -> dict:
    job = None
    if condition == "just-ended":
        job = competitor()
        time.sleep(warm)
        job.kill()
        job.wait()
        job = None
    elif condition == "busy":
        job = competitor()
        time.sleep(1.0)
    load = os.getloadavg()[0]
    cmd = [sys.executable, "-c", CHILD, "upscale", src, "--scale", "4", "-o", dst, "--overwrite",
           "--device", "cpu", "--threads", threads]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if condition == "starts-midway":
        time.sleep(midway)
        job = competitor()
    err = proc.communicate()[1]
    wall = time.perf_counter() - t0
    if job is not None:
        job.kill()
        job.wait()
    if proc.returncode:
        sys.exit(f"upscale failed ({proc.returncode}):\n{err[-2000:]}")
    choices = [line for line in err.splitlines() if line.startswith("threads ")]
    return {"condition": condition, "threads": threads, "wall_s": round(wall, 2), "load_at_start": round(load, 2),
            "thread_choices": choices}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--conditions", nargs="+", choices=CONDITIONS, default=list(CONDITIONS))
    ap.add_argument("--settings", nargs="+", default=["1", "2", "auto"])
    ap.add_argument("--warm", type=float, default=30.0, help="seconds the just-ended job runs")
    ap.add_argument("--midway", type=float, default=5.0, help="seconds after the start the midway job starts")
    a = ap.parse_args()
    from PIL import Image

    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {machine_summary()}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        src, dst = os.path.join(d, "in.png"), os.path.join(d, "out.png")
        Image.fromarray(synthetic_image(a.size)).save(src)
        for _ in range(a.repeats):
            for condition in a.conditions:
                for threads in a.settings:
                    row = one_run(src, dst, threads, condition, a.warm, a.midway)
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    print(f"\n{a.size} x {a.size} x4, median wall (s) of {a.repeats}:\n")
    print("| condition | " + " | ".join(f"--threads {t}" for t in a.settings) + " |")
    print("| --- |" + " ---: |" * len(a.settings))
    for condition in a.conditions:
        cells = [statistics.median(r["wall_s"] for r in rows if r["condition"] == condition and r["threads"] == t)
                 for t in a.settings]
        print(f"| {condition} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")


if __name__ == "__main__":
    main()

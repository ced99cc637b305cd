"""torch.compile against eager: compile time, steady speed and output difference.

For each model and thread count, in a fresh process (no compiled code carried over;
inductor's on-disk cache is pointed at a new folder, so the compile is cold):

* upscale: a synthetic ``--size`` x ``--size`` image x4, whole (one tile), fp32: eager
  median of ``--repeats``; compiled first call (compile included) and median of the
  repeats after it; max |compiled - eager|; graphs compiled;
* train: one optimisation step (batch 2, 48 x 48 LR, 2304 queries each), eager and
  compiled, the same way.

"compile s" is the first compiled call less the compiled steady time. "breaks even
after" is how many images of this size pay back the compile (inf where compiled is not
faster).

    python benchmarks/compile_speed.py --models edsr-baseline-liif edsr-baseline-ciaosr --threads 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from machine_info import machine_summary

CHILD = r"""
import copy, json, statistics, sys, time
import torch
import torch.nn.functional as F
import ciaosr
from ciaosr.compilation import compile_count, compile_model
from ciaosr.inference.tiling import tiled_upsample
from ciaosr.training.schedule import make_optimizer

name, threads, size, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
torch.manual_seed(0)
eager = ciaosr.load_model(name) if name in ciaosr.list_models(pretrained=True) else ciaosr.build_model(name)
eager.eval()
compiled = compile_model(copy.deepcopy(eager))
lr = torch.rand(1, 3, size, size)


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def upscale(model):
    with torch.no_grad():
        return tiled_upsample(model, lr, (4 * size, 4 * size), tile=size)


res = {"model": name, "threads": threads}
eager_t = [timed(lambda: upscale(eager)) for _ in range(repeats)]
first, out_c = timed(lambda: upscale(compiled))
steady = [timed(lambda: upscale(compiled))[0] for _ in range(repeats)]
res["upscale"] = {"eager_s": statistics.median(t for t, _ in eager_t), "first_s": first,
                  "compiled_s": statistics.median(steady), "max_diff": float((out_c - eager_t[0][1]).abs().max()),
                  "graphs": compile_count()}

def train_step(model):
    model.train()
    opt = make_optimizer(model.parameters(), {"type": "adam", "lr": 1e-4, "betas": [0.9, 0.999], "weight_decay": 0})
    g = torch.Generator().manual_seed(1)
    x, coord = torch.rand(2, 3, 48, 48, generator=g), torch.rand(2, 2304, 2, generator=g) * 2 - 1
    cell, gt = torch.full((2, 2304, 2), 2 / 192), torch.rand(2, 2304, 3, generator=g)

    def step():
        loss = F.l1_loss(model(x, coord, cell), model.normalise_target(gt))
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.detach()
    return step

step_e, step_c = train_step(eager), train_step(compiled)
eager_s = [timed(step_e)[0] for _ in range(repeats)]
before = compile_count()
first, _ = timed(step_c)
steady = [timed(step_c)[0] for _ in range(repeats)]
res["train"] = {"eager_s": statistics.median(eager_s), "first_s": first, "compiled_s": statistics.median(steady),
                "graphs": compile_count() - before}
print(json.dumps(res))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["edsr-baseline-liif", "edsr-baseline-ciaosr"])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {machine_summary()}, "
          f"load {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    for name in a.models:
        for threads in a.threads:
            with tempfile.TemporaryDirectory() as cache:
                env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache, "OMP_NUM_THREADS": str(threads)}
                proc = subprocess.run([sys.executable, "-c", CHILD, name, str(threads), str(a.size), str(a.repeats)],
                                      capture_output=True, text=True, env=env)
            if proc.returncode:
                sys.exit(f"{name} at {threads} thread(s) failed:\n{proc.stderr[-2000:]}")
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            print(json.dumps(row), flush=True)
            rows.append(row)
    print(f"\nload at the end {os.getloadavg()[0]:.2f}\n")
    print("| model | threads | part | eager (s) | compiled (s) | speed-up | compile (s) | breaks even after | "
          "max diff | graphs |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        for part in ("upscale", "train"):
            p = r[part]
            gain = p["eager_s"] - p["compiled_s"]
            compile_s = p["first_s"] - p["compiled_s"]
            even = f"{compile_s / gain:.0f}" if gain > 0 else "inf"
            diff = f"{p['max_diff']:.1e}" if "max_diff" in p else ""
            print(f"| {r['model']} | {r['threads']} | {part} | {p['eager_s']:.2f} | {p['compiled_s']:.2f} | "
                  f"{p['eager_s'] / p['compiled_s']:.2f}x | {compile_s:.0f} | {even} | {diff} | {p['graphs']} |")


if __name__ == "__main__":
    main()

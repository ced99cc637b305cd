"""Peak memory and time of ``ciaosr upscale`` on a large input.

Each setting runs in its own subprocess, which writes a synthetic 1024 x 1024 PNG,
runs the real command (``ciaosr upscale in.png --scale 4 -o out.png``, default model,
CPU) in-process and reports its own peak resident set size (``ru_maxrss``) and the
wall and CPU time (and the load average at the end, since a
busy machine stretches the wall time). The target is a peak RSS under 3 GiB.

    python benchmarks/upscale_memory.py                   # automatic tile size
    python benchmarks/upscale_memory.py --tiles auto 128  # several settings
    python benchmarks/upscale_memory.py --size 256        # a quick run
    python benchmarks/upscale_memory.py --size 256 --threads 1 2 --repeats 3  # threads compared

Prints one JSON line per run, a markdown table, and with several runs of a setting the
median wall time of each. Repeats go round the settings in turn, so a change in the
machine's load falls on all of them alike.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from child_run import run_child  # benchmarks/ is the script folder, on sys.path
from machine_info import cpu_name


def synthetic_image(n: int):
    """A deterministic n x n RGB picture with smooth regions, edges and texture."""
    import numpy as np

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:n, 0:n].astype(np.float32) / n
    img = np.stack([0.5 + 0.4 * np.sin(6 * x + 2 * y), 0.5 + 0.4 * np.cos(5 * y - 3 * x), 0.3 + 0.4 * x * y], -1)
    img[(x - 0.5) ** 2 + (y - 0.5) ** 2 < 0.05] *= 0.4  # a disc with a hard edge
    img[((x * 40).astype(int) + (y * 40).astype(int)) % 2 == 0] += 0.1  # a checkerboard
    img += rng.normal(0, 0.02, img.shape).astype(np.float32)  # fine texture
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def child(args) -> None:
    import torch
    from PIL import Image

    from ciaosr.cli.main import main
    from ciaosr.inference.tiling import plan_tiles
    from ciaosr.inference.upscale import get_model

    tile = None if args.tile == "auto" else int(args.tile)
    plan = plan_tiles(get_model(None, "cpu"), "cpu", tile)
    with tempfile.TemporaryDirectory() as d:
        src, dst = os.path.join(d, "in.png"), os.path.join(d, "out.png")
        Image.fromarray(synthetic_image(args.size)).save(src)
        argv = ["upscale", src, "--scale", str(args.scale), "-o", dst, "--device", "cpu"]
        threads = args.threads[0]  # one setting per child
        if threads:
            argv += ["--threads", str(threads)]  # the command's own option
        if tile is not None:
            argv += ["--tile", str(tile)]
        t0 = time.perf_counter()
        rc = main(argv)
        dt = time.perf_counter() - t0
        with Image.open(dst) as im:
            out_size = im.size
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak_kib = usage.ru_maxrss  # KiB on Linux
    print(json.dumps({
        "tile": args.tile, "tile_used": plan.tile, "overlap": plan.overlap, "chunk": plan.chunk, "rc": rc,
        "input": f"{args.size}x{args.size}", "output": f"{out_size[0]}x{out_size[1]}",
        "seconds": round(dt, 1), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "load_avg_1min": round(os.getloadavg()[0], 2), "peak_rss_mib": round(peak_kib / 1024, 1), "threads": torch.get_num_threads(),
    }))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1024, help="input side in pixels (default 1024)")
    p.add_argument("--scale", type=float, default=4.0)
    p.add_argument("--tiles", nargs="+", default=["auto"], help="settings: 'auto' and/or tile sizes")
    p.add_argument("--threads", type=int, nargs="+", default=[0],
                   help="upscale --threads settings (default: 0, the command's default)")
    p.add_argument("--repeats", type=int, default=1, help="runs of each setting (default 1)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--tile", default="auto", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return 0

    import torch

    print(f"# {time.strftime('%Y-%m-%d')}, nproc {os.cpu_count()}, {cpu_name()}, torch {torch.__version__}",
          flush=True)
    rows = []
    settings = [(tile, threads) for tile in args.tiles for threads in args.threads]
    for _ in range(args.repeats):
        for tile, threads in settings:
            row = run_child([__file__, "--child", "--tile", tile, "--size", str(args.size),
                             "--scale", str(args.scale), "--threads", str(threads)])
            if row is None:
                return 1
            rows.append((tile, threads, row))
    print("\n| tile (LR px) | overlap | chunk | input | output | threads | wall (s) | CPU (s) | load | peak RSS (MiB) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for _, _, r in rows:
        tile = f"auto -> {r['tile_used']}" if r["tile"] == "auto" else r["tile"]
        print(f"| {tile} | {r['overlap']} | {r['chunk']} | {r['input']} | {r['output']} | {r['threads']} "
              f"| {r['seconds']} | {r['cpu_seconds']} | {r['load_avg_1min']} | {r['peak_rss_mib']} |")
    if args.repeats > 1:
        print()
        for tile, threads in settings:
            runs = [r["seconds"] for t, n, r in rows if (t, n) == (tile, threads)]
            print(f"tile {tile}, threads {threads or 'default'}: median {statistics.median(runs)} s "
                  f"of {len(runs)} runs ({min(runs)}-{max(runs)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Time the official CiaoSR code's x4 test forward on one random image, on the CPU.

Runs in the throwaway environment of README.md beside this file (mmediting 0.11 and the
official CiaoSR checkout); benchmarks/decoder_speed.py calls it for ``ciaosr:official``.
What runs is official: the EDSR-baseline CiaoSR generator of configs/001_..._edsr_...py
(``ciaosr_restorer``, its default initialisation) called as its test does,
``generator(lr - mean, coord, cell, test_mode=True)``, which decodes in 30000-query
chunks and recomputes the non-local attention in each. Prints one JSON line in
decoder_speed.py's row format.
"""

import argparse
import json
import resource
import statistics
import time

import torch

from mmedit_code import RGB_MEAN, ciaosr_restorer  # beside this file


def grid(h, w):
    """Pixel-centre (row, col) coordinates in [-1, 1] and cells of an h x w output."""
    ys = -1 + 1 / h + 2 / h * torch.arange(h, dtype=torch.float32)
    xs = -1 + 1 / w + 2 / w * torch.arange(w, dtype=torch.float32)
    coord = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).view(1, -1, 2)
    cell = torch.tensor([2 / h, 2 / w]).expand_as(coord).contiguous()
    return coord, cell


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--code", required=True, help="the official CiaoSR checkout")
    ap.add_argument("--mmedit", required=True, help="mmedit 0.11.0's source")
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    generator = ciaosr_restorer(args.code, args.mmedit).generator.eval()
    mean = torch.tensor(RGB_MEAN).view(1, 3, 1, 1)

    def once(size):
        lr = torch.rand(1, 3, size, size) - mean
        coord, cell = grid(size * args.scale, size * args.scale)
        with torch.no_grad():
            return generator(lr, coord, cell, test_mode=True)

    once(16)  # warm-up
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        once(args.size)
        times.append(time.perf_counter() - t)
    print(json.dumps({"decoder": "ciaosr", "mode": "official", "size": args.size, "precision": "fp32",
                      "median_s": statistics.median(times), "runs": times,
                      "peak_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024,
                      "compile_first_run_s": None, "torch": torch.__version__}))


if __name__ == "__main__":
    main()

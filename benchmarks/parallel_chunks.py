"""Decoding chunks side by side, one thread each, against each chunk over all threads.

``ImplicitSRModel.decode_chunked`` on the CPU decodes whole chunks on a pool of
single-thread workers (``ciaosr.runtime.side_by_side``) when torch has several
threads. This times the decoding of every output pixel of one image (x4, random
weights, the encoding done beforehand) both ways, the two taking turns in one process:
``side by side`` as shipped, ``serial`` with the pool switched off.

    python benchmarks/parallel_chunks.py --threads 2 --models edsr-baseline-liif:256 edsr-baseline-ciaosr:96
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import ciaosr
import ciaosr.models.sr_model as sr_model
from ciaosr.geometry import make_cell, make_coord


def time_decoding(model, lr, serial: bool) -> float:
    h, w = lr.shape[-2] * 4, lr.shape[-1] * 4
    coord = make_coord((h, w)).unsqueeze(0)
    cell = make_cell((h, w), h * w).unsqueeze(0)
    real = sr_model.chunk_workers
    if serial:
        sr_model.chunk_workers = lambda *args: 1
    try:
        with torch.no_grad():
            enc = model.encode(lr)
            t = time.perf_counter()
            model.decode_chunked(enc, coord, cell)
            return time.perf_counter() - t
    finally:
        sr_model.chunk_workers = real


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--models", nargs="+", default=["edsr-baseline-liif:256", "edsr-baseline-ciaosr:96"],
                   help="name:LR side")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s)\n")
    print("| model | input | serial (s) | side by side (s) | speed-up |")
    print("| --- | --- | ---: | ---: | ---: |")
    for spec in args.models:
        name, side = spec.split(":")
        torch.manual_seed(0)
        model = ciaosr.build_model(name).eval()
        lr = torch.rand(1, 3, int(side), int(side))
        time_decoding(model, lr[..., :32, :32], False)  # warm-up
        times = {False: [], True: []}
        for _ in range(args.repeats):
            for serial in (True, False):
                times[serial].append(time_decoding(model, lr, serial))
        s, p_ = statistics.median(times[True]), statistics.median(times[False])
        print(f"| {name} | {side}x{side} x4 | {s:.2f} | {p_:.2f} | {s / p_:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

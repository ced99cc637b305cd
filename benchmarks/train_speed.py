"""Training speed of each implicit decoder on the same EDSR-baseline encoder.

One training iteration = forward on a batch of 48x48 LR crops with 2304 queries each
(the paper's recipe), L1 loss, backward, Adam step. The batch is synthetic but shaped
exactly like ``SRTrainDataset``'s (scale-2 crops: cells 2/96), so data loading is not
timed. Each decoder is warmed up, then timed ``--repeats`` times over ``--iters``
iterations; the table gives the median iterations/s.

    python benchmarks/train_speed.py                    # CPU: batch 2, a few minutes
    python benchmarks/train_speed.py --device cuda --batch 16 --iters 20
    python benchmarks/train_speed.py --decoders ciaosr --freeze-encoder --precision bf16

Prints a markdown table with the date, machine, torch version and thread count.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time

import torch

from ciaosr import CiaosrError, build_model
from ciaosr.geometry import make_coord
from ciaosr.decoders.reference import reference_model
from ciaosr.models.factory import count_parameters
from ciaosr.runtime import PRECISIONS, Precision, resolve_device
from ciaosr.training.step import optimisation_step
from machine_info import cpu_name  # benchmarks/ is the script folder, on sys.path

DECODERS = ["ciaosr", "liif", "lte", "metasr", "itsrn"]


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()} ({os.cpu_count()} logical CPUs)"


def add_timing_options(p: argparse.ArgumentParser, *, iters: int) -> None:
    p.add_argument("--iters", type=int, default=iters, help="iterations per timed repeat")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--precision", choices=PRECISIONS, default="fp32")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")


def timing_setup(args) -> tuple[torch.device, Precision]:
    """The device and precision of ``--device`` and ``--precision``, checked; ``--threads`` set."""
    device = resolve_device(args.device)
    precision = Precision.parse(args.precision).check(device)
    if args.threads:
        torch.set_num_threads(args.threads)
    return device, precision


def load_average() -> float | None:
    """The 1-minute system load average (None where the system does not say)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def print_header(device: torch.device, load_before: float | None) -> None:
    """The date, machine, torch and thread count, and the load before the timings and now."""
    print(f"- date: {datetime.date.today().isoformat()}")
    print(f"- machine: {machine(device)}; device: {device}")
    print(f"- torch {torch.__version__}, {torch.get_num_threads()} threads, Python {platform.python_version()}")
    if load_before is not None:
        print(f"- system load average (1 min) before / after: {load_before:.1f} / {load_average():.1f} "
              f"(other processes on the machine slow the timings down)")


def make_batch(batch: int, lr_patch: int, queries: int, scale: float, device, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    crop = round(lr_patch * scale)
    lr = torch.rand(batch, 3, lr_patch, lr_patch, generator=g)
    grid = make_coord((crop, crop))
    idx = torch.stack([torch.randperm(crop * crop, generator=g)[:queries] for _ in range(batch)])
    coord = grid[idx]
    cell = torch.full((batch, queries, 2), 2.0 / crop)
    gt = torch.rand(batch, queries, 3, generator=g)
    return [t.to(device) for t in (lr, coord, cell, gt)]


def timed(step, args, device) -> list[float]:
    """Iterations/s of ``step()`` in each of ``args.repeats`` runs of ``args.iters``
    iterations, after ``args.warmup`` untimed ones."""
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(args.warmup):
        step()
    sync()
    rates = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for _ in range(args.iters):
            step()
        sync()
        rates.append(args.iters / (time.perf_counter() - t0))
    return rates


def time_decoder(decoder: str, args, device, precision: Precision) -> dict:
    """``decoder`` is a decoder name, optionally with a mode: ``ciaosr:reference``."""
    torch.manual_seed(0)
    name, _, mode = decoder.partition(":")
    model = build_model(f"{args.encoder}-{name}")
    if mode == "reference":
        model = reference_model(model)
    elif mode:
        raise SystemExit(f"unknown mode {mode!r} (reference, or none for the project's own)")
    model = model.to(device).train()
    if args.freeze_encoder:  # as the config key freeze_encoder: the decoder alone is trained
        model.encoder.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-4)
    lr, coord, cell, gt = make_batch(args.batch, args.lr_patch, args.queries, args.scale, device)
    scaler = precision.grad_scaler()

    def step():
        optimisation_step(model, model, opt, (lr, coord, cell, gt), precision=precision, scaler=scaler,
                          params=params)

    rates = timed(step, args, device)
    return {"decoder": decoder, "model": f"{args.encoder}-{name}", "params": count_parameters(model),
            "it_s": statistics.median(rates), "min": min(rates), "max": max(rates)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--encoder", default="edsr-baseline")
    p.add_argument("--decoders", nargs="+", default=DECODERS,
                   help="decoder names, optionally with a mode: ciaosr:reference liif:reference")
    p.add_argument("--batch", type=int, default=2, help="LR crops per iteration (the paper: 16)")
    p.add_argument("--lr-patch", type=int, default=48)
    p.add_argument("--queries", type=int, default=2304)
    p.add_argument("--scale", type=float, default=2.0, help="scale of the synthetic crops (sets the cells)")
    add_timing_options(p, iters=3)
    p.add_argument("--freeze-encoder", action="store_true",
                   help="train the decoder only, the encoder frozen (the config key freeze_encoder)")
    args = p.parse_args(argv)
    device, precision = timing_setup(args)
    load_before = load_average()
    rows = [time_decoder(d, args, device, precision) for d in args.decoders]
    ref = next((r["it_s"] for r in rows if r["decoder"] == "liif"), None)
    print_header(device, load_before)
    print(f"- batch {args.batch} x {args.lr_patch}x{args.lr_patch} LR crops, {args.queries} queries each, "
          f"precision {args.precision}, encoder {'frozen' if args.freeze_encoder else 'trained'}; "
          f"median of {args.repeats} repeats of {args.iters} iterations "
          f"after {args.warmup} warm-up")
    print()
    print("| decoder | model | parameters | iterations/s (median) | range | s/iteration | vs LIIF |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        rel = f"{r['it_s'] / ref:.2f}x" if ref else "-"
        print(f"| {r['decoder']} | {r['model']} | {r['params']:,} | {rate_cells(r)} | {rel} |")
    return 0


def rate_cells(row: dict) -> str:
    """The median iterations/s, their range and the seconds per iteration, as table cells."""
    return f"{row['it_s']:.3f} | {row['min']:.3f}-{row['max']:.3f} | {1 / row['it_s']:.2f}"


def run_main(main_fn) -> None:
    try:
        raise SystemExit(main_fn())
    except CiaosrError as exc:  # a bad --device or --precision: one line, as the CLI
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    run_main(main)

"""Training speed of the two real-world stages (docs/real-world.md), per iteration.

Stage 1: L1 on ``--queries`` scattered queries per sample (``optimisation_step``).
Stage 2: L1 + VGG19 perceptual + GAN on a ``--window`` x ``--window`` block of queries,
then one step of the U-Net discriminator (``realworld_step``), EMA update included in
both. The batches are synthetic but shaped as ``RealWorldBatcher`` makes them (LR
patches of ``--lr-patch``, cells of scale ``--scale``), so the degradations are not in
these timings; they are timed on their own (``--degrade``: the project's
``ciaosr.data.degradations`` on ``--gt-size`` crops, per batch) when that module is
installed. The VGG19 weights are random unless ``--vgg PATH`` is given: the time does
not depend on their values.

    python benchmarks/realworld_train_speed.py --threads 1 --batch 2               # CPU, a minute or two
    python benchmarks/realworld_train_speed.py --device cuda --batch 48 --encoder swinir --iters 10

Prints a markdown table with the date, machine, torch version and thread count.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch

from ciaosr import CiaosrError, build_model
from ciaosr.data.realworld import RealWorldBatch, RealWorldBatcher
from ciaosr.geometry import tile_queries
from ciaosr.models.factory import count_parameters
from ciaosr.runtime import Precision
from ciaosr.training.discriminator import UNetDiscriminatorSN
from ciaosr.training.ema import EMA
from ciaosr.training.losses import RELEASED_LAYER_WEIGHTS, PerceptualLoss
from ciaosr.training.step import Adversary, optimisation_step, realworld_step
from train_speed import (add_timing_options, load_average, print_header, rate_cells, run_main, timed,
                         timing_setup)  # benchmarks/ is the script folder, on sys.path

WEIGHTS_STAGE2 = {"pixel": 1.0, "perceptual": 1.0, "gan": 0.1}  # the released loss weights


def make_batch(args, device, window: int | None) -> RealWorldBatch:
    """LR patches and queries as RealWorldBatcher makes them at scale ``args.scale``."""
    g = torch.Generator().manual_seed(0)
    p, b = args.lr_patch, args.batch
    crop = round(p * args.scale)
    lr = torch.rand(b, 3, p, p, generator=g)
    if window is not None:
        coord, cell = tile_queries((p, p), (crop, crop), (0, p, 0, p), np.arange(window), np.arange(window))
        coord, cell = coord.expand(b, -1, -1), cell.expand(b, -1, -1)
    else:
        coord = torch.rand(b, args.queries, 2, generator=g) * 2 - 1
        cell = torch.full((b, args.queries, 2), 2.0 / crop)
    q = coord.shape[1]
    target, real = torch.rand(b, q, 3, generator=g), torch.rand(b, q, 3, generator=g)
    return RealWorldBatch(*(t.to(device).contiguous() for t in (lr, coord, cell, target, real)), window)


def time_stage(n: int, args, device, precision: Precision) -> dict:
    torch.manual_seed(0)
    model = build_model(f"{args.encoder}-ciaosr", decoder_args={"non_local": False, "residual": False})
    model = model.to(device).train()
    ema = EMA(model, 0.999)
    params = list(model.parameters())
    lr = 2e-4 if n == 1 else 1e-4
    opt = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.99))
    scaler = precision.grad_scaler()
    extra = 0
    if n == 1:
        batch = make_batch(args, device, None)
        inputs = (batch.lr, batch.coord, batch.cell, batch.target)

        def step():
            optimisation_step(model, model, opt, inputs, precision=precision, scaler=scaler, params=params)
            ema.update(model)
    else:
        batch = make_batch(args, device, args.window)
        percep = PerceptualLoss(RELEASED_LAYER_WEIGHTS, args.vgg).to(device)
        d = UNetDiscriminatorSN(3, 64).to(device)
        extra = count_parameters(d)
        adversary = Adversary(d, d, torch.optim.Adam(d.parameters(), lr=1e-4, betas=(0.9, 0.99)))

        def step():
            realworld_step(model, model, opt, batch, WEIGHTS_STAGE2, perceptual=percep, adversary=adversary,
                           precision=precision, scaler=scaler, params=params)
            ema.update(model)
    rates = timed(step, args, device)
    return {"what": f"stage {n}", "params": count_parameters(model) + extra, "queries": batch.coord.shape[1],
            "it_s": statistics.median(rates), "min": min(rates), "max": max(rates)}


def time_degradation(args, device) -> list[dict]:
    """The project's degradations on a batch of GT crops, one call per sample
    (``data.degrade_per_sample: true``) and per batch ([] when not installed)."""
    try:
        from ciaosr.data.realworld import default_ops

        ops = default_ops("realesrgan")
    except CiaosrError:
        return []
    g = torch.Generator().manual_seed(0)
    b = args.batch
    batch = {"gt": torch.rand(b, 3, args.gt_size, args.gt_size, generator=g),
             "scale": torch.rand(b, generator=g) * 3 + 1, "seed": torch.arange(b, dtype=torch.int64)}
    rows = []
    for per_sample in (True, False):
        batcher = RealWorldBatcher(ops, lr_patch=args.lr_patch, window=args.window, per_sample=per_sample)
        rates = timed(lambda: batcher(batch, device), args, device)
        rows.append({"what": f"sharpening, degradation and crops ({'per sample' if per_sample else 'per batch'})",
                     "params": 0, "queries": args.window * args.window,
                     "it_s": statistics.median(rates), "min": min(rates), "max": max(rates)})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--encoder", default="edsr-baseline", help="edsr-baseline, rdn or swinir (with CiaoSR)")
    p.add_argument("--stages", nargs="+", type=int, default=[1, 2], choices=[1, 2])
    p.add_argument("--batch", type=int, default=2, help="samples per iteration (the paper: 48)")
    p.add_argument("--lr-patch", type=int, default=64)
    p.add_argument("--queries", type=int, default=4096, help="stage 1: scattered queries per sample")
    p.add_argument("--window", type=int, default=64, help="stage 2: side of the block of queries")
    p.add_argument("--scale", type=float, default=2.0, help="scale of the synthetic batches (sets the cells)")
    p.add_argument("--gt-size", type=int, default=256, help="GT crops for the degradation timing")
    p.add_argument("--no-degrade", action="store_true", help="leave out the degradation timing")
    p.add_argument("--vgg", default=None, help="vgg19-dcbb9e9d.pth (default: random weights of its shapes)")
    add_timing_options(p, iters=2)
    args = p.parse_args(argv)
    device, precision = timing_setup(args)

    load_before = load_average()
    rows = [time_stage(n, args, device, precision) for n in args.stages]
    degradation = [] if args.no_degrade else time_degradation(args, device)
    print_header(device, load_before)
    print(f"- {args.encoder}-ciaosr (no non-local attention, no global residual), batch {args.batch} x "
          f"{args.lr_patch}x{args.lr_patch} LR patches at scale {args.scale:g}, precision {args.precision}; "
          f"stage 1: {args.queries} scattered queries, L1; stage 2: a {args.window}x{args.window} block, "
          f"L1 + perceptual (VGG19, {'weights ' + args.vgg if args.vgg else 'random weights'}) + GAN "
          f"(U-Net discriminator, 64 channels) and a discriminator step; EMA in both; synthetic batches; "
          f"median of {args.repeats} repeats of {args.iters} iterations after {args.warmup} warm-up")
    if not args.no_degrade:
        what = (f"the Real-ESRGAN pipeline and USM sharpening on {args.gt_size}-pixel GT crops at scales from "
                f"U[1, 4], then the crops and queries, one call per sample and one per batch"
                if degradation else "ciaosr.data.degradations is not installed: not timed")
        print(f"- degradation: {what}")
    print()
    print("| what | parameters | queries/sample | iterations/s (median) | range | s/iteration |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows + degradation:
        print(f"| {r['what']} | {r['params']:,} | {r['queries']} | {rate_cells(r)} |")
    return 0


if __name__ == "__main__":
    run_main(main)

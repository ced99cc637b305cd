"""Throughput of the real-world degradation pipelines (ciaosr.data.degradations).

One call = ``degrade`` on a batch of GT crops (default 8 of 256x256, smooth random
images) with per-sample scales drawn from U[1, 4] as training draws them, so the final
resize, sinc and JPEG run per group of equal sizes. Each pipeline is warmed up once,
then timed ``--repeats`` times, each with its own seed (the draws, hence the work,
differ from call to call: the table gives the median and the range).

    python benchmarks/degradation_speed.py                      # CPU, 1 thread
    python benchmarks/degradation_speed.py --threads 2 --repeats 20
    python benchmarks/degradation_speed.py --device cuda --batch 48

Prints a markdown table with the date, machine, torch version and thread count.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import time

import torch
import torch.nn.functional as F

from ciaosr.data.degradations import PIPELINES, DegradationSettings, degrade
from ciaosr.runtime import resolve_device
from machine_info import cpu_name  # benchmarks/ is the script folder, on sys.path


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()} ({os.cpu_count()} logical CPUs)"


def gt_batch(batch: int, size: int, device: torch.device) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    coarse = torch.rand(batch, 3, size // 16, size // 16, generator=g)
    fine = torch.rand(batch, 3, size, size, generator=g)
    hr = 0.85 * F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False) + 0.15 * fine
    return hr.clamp(0, 1).to(device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_pipeline(name: str, hr: torch.Tensor, repeats: int, device: torch.device) -> list[float]:
    settings = DegradationSettings.from_config(None, pipeline=name)
    times = []
    for seed in range(repeats + 1):  # seed 0 warms up
        g = torch.Generator(device=device).manual_seed(seed)
        scales = 1 + 3 * torch.rand(hr.shape[0], generator=torch.Generator().manual_seed(seed))
        sync(device)
        t0 = time.perf_counter()
        degrade(hr, scales, settings, g)
        sync(device)
        if seed:
            times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=256, help="GT crop size (default 256)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--device", default="cpu")
    p.add_argument("--pipelines", nargs="+", choices=PIPELINES, default=list(PIPELINES))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device, allowed=("cpu", "cuda"))
    hr = gt_batch(args.batch, args.size, device)
    print(f"{datetime.date.today()}, {machine(device)}, torch {torch.__version__}, {args.threads} thread(s), "
          f"batch {args.batch} of {args.size}x{args.size}, scales U[1, 4] per sample, {args.repeats} calls")
    print()
    print("| pipeline | ms per batch (median) | min - max | crops/s |")
    print("| --- | ---: | ---: | ---: |")
    for name in args.pipelines:
        times = time_pipeline(name, hr, args.repeats, device)
        med = statistics.median(times)
        print(f"| {name} | {med * 1000:.0f} | {min(times) * 1000:.0f} - {max(times) * 1000:.0f} | "
              f"{args.batch / med:.1f} |")


if __name__ == "__main__":
    main()

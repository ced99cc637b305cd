"""How much slower bf16 (autocast) is than fp32 on this CPU, on one thread, for the
products the shipped model spends its time in: the EDSR-baseline encoder's 3x3
convolution (64 -> 64 channels on a 48 x 48 crop) and the CiaoSR decoder's first MLP
layer (4096 query-neighbour rows, 644 -> 256).

CPUs with AVX512-BF16 or AMX compute bf16 natively; others emulate it, far slower
than fp32 (``ciaosr.runtime`` warns when bf16 is asked for there). ``--no-onednn``
also times the products with oneDNN turned off (``torch.backends.mkldnn``), the
kernels torch takes for bf16 on a CPU without AVX-512: on a CPU that has native bf16
it shows the cost of the emulated path without such a CPU at hand.

    python benchmarks/bf16_matmul.py
    python benchmarks/bf16_matmul.py --no-onednn --repeats 3

Prints the CPU, its bf16-related ``lscpu`` flags, and per product the GFLOP/s in fp32
and in bf16 and the factor (fp32 speed / bf16 speed).
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import subprocess
import time

import torch
import torch.nn.functional as F

from machine_info import cpu_name  # benchmarks/ is the script folder, on sys.path

BF16_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_flags() -> list[str]:
    """The bf16-related flags ``lscpu`` lists (an empty list without lscpu)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    flags = next((line.split(":", 1)[1].split() for line in out.splitlines() if line.startswith("Flags")), [])
    return [f for f in BF16_FLAGS if f in flags]


def products():
    """(name, flops, function) of the timed products, inputs made once."""
    torch.manual_seed(0)
    x = torch.randn(1, 64, 48, 48)
    w = torch.randn(64, 64, 3, 3) * 0.05
    rows = torch.randn(4096, 644)
    lin = torch.randn(256, 644) * 0.05
    return [
        ("conv 3x3 64->64, 48x48", 2 * 48 * 48 * 64 * 64 * 9, lambda: F.conv2d(x, w, padding=1)),
        ("linear 4096 x 644->256", 2 * 4096 * 644 * 256, lambda: F.linear(rows, lin)),
    ]


def seconds(fn, bf16: bool, repeats: int, min_s: float = 0.2) -> float:
    """The median time of one call, each repeat timing as many calls as fill ``min_s``."""
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        fn()  # warm-up (and the kernels' first-use setup)
        times = []
        for _ in range(repeats):
            n, t0 = 0, time.perf_counter()
            while True:
                fn()
                n += 1
                elapsed = time.perf_counter() - t0
                if elapsed >= min_s:
                    break
            times.append(elapsed / n)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-onednn", action="store_true", help="also time with oneDNN turned off")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    flags = " ".join(cpu_flags()) or "none of " + ", ".join(BF16_FLAGS)
    print(f"{datetime.date.today()}, {cpu_name()}, flags: {flags}, torch {torch.__version__}, {args.threads} thread(s)")
    print(f"torch sees native bf16: avx512_bf16 {torch.cpu._is_avx512_bf16_supported()}, "
          f"amx {torch.cpu._is_amx_tile_supported()}")
    print("| product | kernels | fp32 GFLOP/s | bf16 GFLOP/s | fp32 / bf16 speed |")
    print("|---|---|---:|---:|---:|")
    for onednn in (True, False) if args.no_onednn else (True,):
        torch.backends.mkldnn.enabled = onednn
        for name, flops, fn in products():
            fp32, bf16 = (flops / seconds(fn, b, args.repeats) / 1e9 for b in (False, True))
            print(f"| {name} | {'oneDNN' if onednn else 'oneDNN off'} | {fp32:.1f} | {bf16:.2f} "
                  f"| {fp32 / bf16:.2f} |", flush=True)


if __name__ == "__main__":
    main()

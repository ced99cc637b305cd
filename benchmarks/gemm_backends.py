"""The decoders' float32 matrix products through PyTorch's BLAS (MKL) and through oneDNN.

For each product shape the CPU decoders run (an MLP layer of a 1024-query chunk with its
four neighbours, CiaoSR's value layer, the non-local attention's score and paste
products on a band of a 192-px tile), the rate in GMAC/s (best of ``--repeats``) through
``torch.addmm`` and through ``torch.ops.mkldnn._linear_pointwise``, at each thread count,
with the largest difference of each from a float64 product (relative to the result's
largest magnitude). ``ciaosr.decoders.gemm`` makes the same choice at run time.

    python benchmarks/gemm_backends.py --threads 1 2
"""

from __future__ import annotations

import argparse
import datetime
import time

import torch

from machine_info import machine_summary  # benchmarks/ is the script folder, on sys.path

SHAPES = [  # (name, rows, inner, outputs)
    ("MLP hidden layer, 1024 queries x 4 neighbours", 4096, 256, 256),
    ("CiaoSR value layer (256 -> 640)", 4096, 256, 640),
    ("CiaoSR logit tables (576 -> 256)", 16384, 576, 256),
    ("non-local scores, 8 rows of a 192 tile", 1536, 288, 9216),
    ("non-local paste, 8 rows of a 192 tile", 1024, 9216, 1536),
]


def best(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args()
    gen = torch.Generator().manual_seed(0)
    print(f"- date: {datetime.date.today().isoformat()}; {machine_summary()}; torch {torch.__version__}")
    print("\n| product | threads | BLAS (GMAC/s) | oneDNN (GMAC/s) | oneDNN / BLAS | BLAS error | oneDNN error |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    torch.set_grad_enabled(False)
    relu_rows = []
    for name, rows, inner, outs in SHAPES:
        x = torch.randn(rows, inner, generator=gen)
        w = torch.randn(outs, inner, generator=gen) / inner ** 0.5
        b = torch.randn(outs, generator=gen)
        exact = torch.addmm(b.double(), x.double(), w.double().t())
        scale = exact.abs().max().item()
        blas = torch.addmm(b, x, w.t())
        onednn = torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")
        err = [(y.double() - exact).abs().max().item() / scale for y in (blas, onednn)]
        for threads in args.threads:
            torch.set_num_threads(threads)
            macs = rows * inner * outs / 1e9
            t_blas = best(lambda: torch.addmm(b, x, w.t()), args.repeats)
            t_dnn = best(lambda: torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], ""), args.repeats)
            print(f"| {name} | {threads} | {macs / t_blas:.1f} | {macs / t_dnn:.1f} | {t_blas / t_dnn:.2f}x | "
                  f"{err[0]:.1e} | {err[1]:.1e} |")
            if outs == inner == 256:  # the ReLU after it: fused into oneDNN's product, or a pass of its own
                t_fused = best(lambda: torch.ops.mkldnn._linear_pointwise(x, w, b, "relu", [], ""), args.repeats)
                t_apart = best(lambda: torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "").relu_(),
                               args.repeats)
                relu_rows.append(f"| {name} | {threads} | {macs / t_apart:.1f} | {macs / t_fused:.1f} | "
                                 f"{t_apart / t_fused:.2f}x |")
    print("\nWith the ReLU that follows, through oneDNN:\n")
    print("| product | threads | product, then ReLU (GMAC/s) | ReLU fused (GMAC/s) | fused / apart |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print("\n".join(relu_rows))


if __name__ == "__main__":
    main()

"""Inference time and peak memory of each decoder on the EDSR-baseline encoder.

For every setting (decoder, mode, input size, precision) a fresh subprocess builds the
model, runs one warm-up at a small size, then times whole-image x4 upscaling (encoder,
per-pixel preparation and chunked decoding of every output pixel) as the median of
``--repeats`` runs, and reports its peak RSS increase over the model-loaded baseline.

Modes: ``fast`` is the project's implementation; ``reference`` computes as the official
code does (CiaoSR: non-local attention and unfolding inside every query chunk, every MLP
layer per query and neighbour; LIIF: every MLP layer per query and neighbour; ITSRN: the
27C-wide transform matrix per query and neighbour), in the
official 30000-query chunks; the other rows decode in each decoder's own CPU chunk
(``decoder.cpu_chunk``, 512 or 1024 queries: fastest on the CPU), or 30000 queries for
the decoders without one (LM-LIIF, LM-LTE, LM-CiaoSR, SRNO, OPE-SR, CLIT, the last on its own 147-channel
EDSR-baseline; SRNO first gathers its attention sums
over all queries, ``plan_queries``).

``ciaosr:official`` times the official CiaoSR code (benchmarks/official/ciaosr_speed.py,
run by ``--official-python``, the throwaway environment of benchmarks/official/README.md,
with ``--ciaosr-repo`` and ``--mmedit-src``), fp32 only.

``liif:official`` times the official LIIF code itself (github.com/yinboc/liif, not part
of this project: give a checkout with ``--liif-repo``), its EDSR-baseline LIIF with its
default initialisation, decoded as its ``test.py`` does (``gen_feat`` once, then
``query_rgb`` on 30000-query chunks). Its training-only import (``tensorboardX``) is
given an empty stand-in and its ``.cuda()`` calls are made no-ops on the CPU.

    python benchmarks/decoder_speed.py --sizes 192 --decoders ciaosr:fast liif:reference \
        liif:official --liif-repo ../liif

    python benchmarks/decoder_speed.py                     # 48x48 x4, fp32 and bf16
    python benchmarks/decoder_speed.py --sizes 48 192 --repeats 3 --write docs/performance.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys

from machine_info import cpu_flags, cpu_name  # benchmarks/ is the script folder, on sys.path

OFFICIAL_CIAOSR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "official", "ciaosr_speed.py")
SETTINGS = [  # (decoder, mode)
    ("ciaosr", "reference"), ("ciaosr", "fast"),
    ("liif", "reference"), ("liif", "fast"),
    ("lte", None), ("metasr", None),
    ("itsrn", "reference"), ("itsrn", "fast"),
    ("lmliif", None), ("lmlte", None), ("lmciaosr", None), ("srno", None), ("ope", None), ("clit", None),
]


class OfficialLIIF:
    """The official LIIF code's EDSR-baseline LIIF behind ``upsample``, as its test.py
    runs it: inputs normalised by 0.5/0.5, ``gen_feat``, ``query_rgb`` per 30000 queries."""

    def __init__(self, repo: str, device):
        import types

        import torch

        sys.path.insert(0, os.path.abspath(repo))
        sys.modules.setdefault("tensorboardX", types.SimpleNamespace(SummaryWriter=None))
        if device.type == "cpu":
            torch.Tensor.cuda = lambda self, *args, **kwargs: self
        import models  # the official package

        spec = {"name": "liif", "args": {
            "encoder_spec": {"name": "edsr-baseline", "args": {"no_upsampling": True}},
            "imnet_spec": {"name": "mlp", "args": {"out_dim": 3, "hidden_list": [256, 256, 256, 256]}}}}
        self.net = models.make(spec).eval().to(device)

    def upsample(self, lr, shape, chunk: int = 30000):
        import torch

        from ciaosr.geometry import make_cell, make_coord

        coord = make_coord(shape, lr.device).unsqueeze(0)
        cell = make_cell(shape, coord.shape[1], lr.device).unsqueeze(0)
        self.net.gen_feat((lr - 0.5) / 0.5)
        pred = torch.cat([self.net.query_rgb(coord[:, i:i + chunk], cell[:, i:i + chunk])
                          for i in range(0, coord.shape[1], chunk)], dim=1)
        img = (pred * 0.5 + 0.5).clamp_(0, 1)
        return img.view(1, *shape, 3).permute(0, 3, 1, 2)


def run_one(decoder: str, mode: str | None, size: int, precision: str, repeats: int, scale: int,
            device: str, threads: int | None, compile: bool = False, liif_repo: str | None = None,
            gemm: str | None = None) -> dict:
    import resource
    import time

    import torch

    import ciaosr
    from ciaosr.runtime import Precision

    if threads:
        torch.set_num_threads(threads)
    if gemm:
        os.environ["CIAOSR_CPU_GEMM"] = gemm
    torch.manual_seed(0)
    from ciaosr.decoders.reference import reference_model

    if mode == "official":
        model = OfficialLIIF(liif_repo, torch.device(device))
    else:
        model = ciaosr.build_model(f"edsr-baseline-{decoder}").eval().to(device)
    if mode == "reference":
        model = reference_model(model)
    lr = torch.rand(1, 3, size, size, device=device)
    out_size = (size * scale, size * scale)
    dev, prec = torch.device(device), Precision.parse(precision)

    def once(x, shape):
        with torch.no_grad(), prec.autocast(dev):
            y = model.upsample(x, shape)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return y

    once(lr[..., :16, :16], (64, 64))  # warm-up (allocators, kernels)
    first_s = None
    if compile:  # compile for exactly the timed shapes, and report that one-off cost
        from ciaosr.compilation import compile_model

        compile_model(model)
        t = time.perf_counter()
        once(lr, out_size)
        first_s = time.perf_counter() - t
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        once(lr, out_size)
        times.append(time.perf_counter() - t)
    if dev.type == "cuda":
        peak_mb = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024
    label = (mode or "fast") + ("+compile" if compile else "") + (f"+{gemm}" if gemm else "")
    return {"decoder": decoder, "mode": label, "size": size, "precision": precision,
            "median_s": statistics.median(times), "runs": times, "peak_mb": peak_mb,
            "compile_first_run_s": first_s}


def machine(threads: int | None = None, device=None) -> str:
    import torch

    gpu = f"{torch.cuda.get_device_name(device)} with " if device is not None and device.type == "cuda" else ""
    return (f"{gpu}{cpu_name()} ({', '.join(cpu_flags())}), {os.cpu_count()} cores, torch {torch.__version__}, "
            f"{threads or torch.get_num_threads()} thread(s)")


def table(rows: list[dict]) -> str:
    bases = ["reference", "fast"] + (["official"] if any(r["mode"] == "official" for r in rows) else [])
    out = ["| decoder | mode | input | precision | time (s, median) | peak memory (MiB) | "
           + " | ".join(f"vs LIIF {b}" for b in bases) + " |",
           "| --- | --- | --- | --- | ---: | ---: |" + " ---: |" * len(bases)]
    for r in rows:
        ratios = []
        for mode in bases:
            base = next((x for x in rows if x["decoder"] == "liif" and x["mode"] == mode
                         and x["size"] == r["size"] and x["precision"] == r["precision"]), None)
            ratios.append(f"{r['median_s'] / base['median_s']:.2f}x" if base else "-")
        out.append(f"| {r['decoder']} | {r['mode']} | {r['size']}x{r['size']} x4 | {r['precision']} | "
                   f"{r['median_s']:.3f} | {r['peak_mb']:.0f} | " + " | ".join(ratios) + " |")
    return "\n".join(out)


def main() -> int:
    from ciaosr.runtime import PRECISIONS, Precision, resolve_device

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[48])
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=PRECISIONS)
    p.add_argument("--decoders", nargs="+", default=None, help="subset, e.g. ciaosr:fast liif:reference")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: PyTorch's)")
    p.add_argument("--compile", action="store_true",
                   help="also time each fast setting compiled (ciaosr.compilation.compile_model, as --compile)")
    p.add_argument("--gemm", nargs="+", choices=("auto", "blas", "onednn"), default=None,
                   help="time each of our settings with CIAOSR_CPU_GEMM set to each of these "
                        "(ciaosr.decoders.gemm; default: the environment's)")
    p.add_argument("--liif-repo", metavar="DIR",
                   help="a checkout of github.com/yinboc/liif, for the liif:official setting")
    p.add_argument("--ciaosr-repo", metavar="DIR",
                   help="the official CiaoSR checkout, for ciaosr:official (with --mmedit-src and --official-python)")
    p.add_argument("--mmedit-src", metavar="DIR", help="mmediting 0.11.0's source, for ciaosr:official")
    p.add_argument("--official-python", metavar="EXE",
                   help="the throwaway environment's python (benchmarks/official/README.md), for ciaosr:official")
    p.add_argument("--write", metavar="MD", help="replace the '## Decoder speed' section of this file")
    p.add_argument("--json", metavar="FILE")
    p.add_argument("--_one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._one:
        print(json.dumps(run_one(**json.loads(args._one))))
        return 0
    device = resolve_device(args.device)  # checked here, once, before any subprocess
    for precision in args.precisions:
        Precision.parse(precision).check(device)
    settings = SETTINGS
    if args.decoders:
        settings = [(d.split(":")[0], (d.split(":") + [None])[1]) for d in args.decoders]
    settings = [(d, m, False) for d, m in settings]
    if any(m == "official" for _, m, _ in settings) and not (
            args.liif_repo and os.path.isfile(os.path.join(args.liif_repo, "models", "liif.py"))):
        sys.exit("error: liif:official needs --liif-repo DIR, a checkout of github.com/yinboc/liif")
    if ("ciaosr", "official") in [(d, m) for d, m, _ in settings] and not (
            args.ciaosr_repo and args.mmedit_src and args.official_python):
        sys.exit("error: ciaosr:official needs --ciaosr-repo, --mmedit-src and --official-python")
    if args.compile:
        settings += [(d, m, True) for d, m, _ in settings if m in (None, "fast")]
    # The official code's products are its own: it runs once, whatever --gemm says.
    settings = [(d, m, c, g) for d, m, c in settings
                for g in ([None] if m == "official" or not args.gemm else args.gemm)]
    rows = []
    for size in args.sizes:
        for precision in args.precisions:
            for decoder, mode, compile_, gemm in settings:
                job = dict(decoder=decoder, mode=mode, size=size, precision=precision,
                           repeats=args.repeats, scale=args.scale, device=str(device),
                           threads=args.threads, compile=compile_, gemm=gemm,
                           liif_repo=args.liif_repo if mode == "official" else None)
                command = [sys.executable, __file__, "--_one", json.dumps(job)]
                if (decoder, mode) == ("ciaosr", "official"):  # in the official code's own environment
                    command = [args.official_python, OFFICIAL_CIAOSR, "--code", args.ciaosr_repo,
                               "--mmedit", args.mmedit_src, "--size", str(size), "--scale", str(args.scale),
                               "--repeats", str(args.repeats)] + (["--threads", str(args.threads)] if args.threads else [])
                res = subprocess.run(command, capture_output=True, text=True)
                if res.returncode != 0:
                    print(f"failed: {job}\n{res.stderr[-2000:]}", file=sys.stderr)
                    continue
                rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
                r = rows[-1]
                print(f"{decoder:7s} {r['mode']:16s} {size:4d} {precision}: {r['median_s']:.3f} s, "
                      f"{r['peak_mb']:.0f} MiB", flush=True)
                if args.json:  # after every row: a run stopped early keeps what it measured
                    with open(args.json, "w") as f:
                        json.dump({"machine": machine(args.threads, device), "rows": rows}, f, indent=2)
    import torch

    header = (f"Measured {datetime.date.today().isoformat()} on {machine(args.threads, device)} "
              f"with `python benchmarks/decoder_speed.py {' '.join(sys.argv[1:])}`.")
    text = header + "\n\n" + table(rows)
    print("\n" + text)
    if args.write:
        _write_section(args.write, "## Decoder speed", text)
    del torch
    return 0


def _write_section(path: str, heading: str, body: str) -> None:
    """Replace (or append) one ``## `` section of a markdown file, keeping the others."""
    old = open(path).read() if os.path.exists(path) else "# Performance\n"
    lines = old.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == heading), None)
    block = [heading, "", *body.splitlines(), ""]
    if start is None:
        lines += ["", *block]
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines[start:end] = block
    with open(path, "w") as f:
        f.write("\n".join(lines).rstrip() + "\n")


if __name__ == "__main__":
    from ciaosr import CiaosrError

    try:
        sys.exit(main())
    except CiaosrError as exc:  # a bad --device or precision: one line, as the CLI
        sys.exit(f"error: {exc}")

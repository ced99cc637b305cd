"""Where the time of ``ciaosr upscale`` goes, end to end, at a given thread count.

Each setting runs in its own subprocess: it writes a synthetic picture (the one of
``upscale_memory.py``), runs the real command (``ciaosr upscale in.png --scale S -o
out.png --device cpu``) in-process with timers around each stage, and reports wall,
user and system CPU time, peak RSS and the stages:

- read: reading and converting the input file; write: converting and writing the output;
- encoder: the encoder trunk; prepare: the decoder's per-pixel work (CiaoSR: unfolding,
  non-local attention, first-layer halves); decode: per-query decoding (all chunks);
- tiling: the rest of the tiler (planning, coordinates, blending, copies).

    python benchmarks/upscale_stages.py --size 1024 --threads 1 2
    python benchmarks/upscale_stages.py --size 192 --model edsr-baseline-ciaosr --threads 1 2

``--model`` takes a model name with weights or, for models without shipped weights, the
name of an architecture, built with random weights (seed 0): speed does not depend on
the weights.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from collections import defaultdict

from child_run import run_child  # benchmarks/ is the script folder, on sys.path
from machine_info import cpu_name
from upscale_memory import synthetic_image


def _timed(table: dict, name: str, fn):
    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            table[name] += time.perf_counter() - t
    return wrapper


def child(args) -> None:
    import torch
    from PIL import Image

    import ciaosr
    import ciaosr.imageio as imageio
    import ciaosr.inference.upscale as api
    from ciaosr.cli.main import main
    from ciaosr.models.pretrained import shipped
    from ciaosr.models.sr_model import EncodedImage, ImplicitSRModel

    stages: dict[str, float] = defaultdict(float)
    if shipped(args.model) is None:  # an architecture without weights: random ones
        torch.manual_seed(0)
        model = ciaosr.build_model(args.model)
        get_model = api.get_model
        api.get_model = lambda name, device: get_model(model, device)

    def encode(self, lr):
        t = time.perf_counter()
        x = self.normalise(lr)
        feat = self.encoder(x.contiguous(memory_format=torch.channels_last))
        t1 = time.perf_counter()
        prepared = self.decoder.prepare(feat)
        stages["encoder"] += t1 - t
        stages["prepare"] += time.perf_counter() - t1
        return EncodedImage(x, feat, prepared)

    # The command imports these at run time, so wrapping the module attributes times them.
    ImplicitSRModel.encode = encode
    ImplicitSRModel.decode_chunked = _timed(stages, "decode", ImplicitSRModel.decode_chunked)
    api.tiled_upsample = _timed(stages, "model total", api.tiled_upsample)
    imageio.read_image = _timed(stages, "read", imageio.read_image)
    imageio.write_image = _timed(stages, "write", imageio.write_image)

    with tempfile.TemporaryDirectory() as d:
        src, dst = os.path.join(d, "in.png"), os.path.join(d, "out.png")
        Image.fromarray(synthetic_image(args.size)).save(src)
        argv = ["upscale", src, "--scale", str(args.scale), "-o", dst, "--device", "cpu",
                "--threads", str(args.threads)]
        if shipped(args.model) is not None:
            argv += ["--model", args.model]
        before = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        rc = main(argv)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_SELF)
    stages["tiling"] = stages.pop("model total") - stages["encoder"] - stages["prepare"] - stages["decode"]
    print(json.dumps({
        "model": args.model, "input": f"{args.size}x{args.size}", "scale": args.scale, "threads": args.threads,
        "rc": rc, "wall_s": round(wall, 2), "user_s": round(after.ru_utime - before.ru_utime, 2),
        "sys_s": round(after.ru_stime - before.ru_stime, 2), "peak_rss_mib": round(after.ru_maxrss / 1024, 1),
        "stages_s": {k: round(v, 2) for k, v in stages.items()},
    }))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1024, help="input side in pixels (default 1024)")
    p.add_argument("--scale", type=float, default=4.0)
    p.add_argument("--model", default="edsr-baseline-liif", help="model name (default: the shipped LIIF)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        args.threads = args.threads[0]
        child(args)
        return 0

    import torch

    print(f"# {time.strftime('%Y-%m-%d')}, {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"load average before {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    for threads in args.threads:
        row = run_child([__file__, "--child", "--size", str(args.size), "--scale", str(args.scale),
                         "--model", args.model, "--threads", str(threads)])
        if row is None:
            return 1
        rows.append(row)
    names = ["read", "encoder", "prepare", "decode", "tiling", "write"]
    print("\n| model | input | threads | wall (s) | user (s) | sys (s) | peak RSS (MiB) | "
          + " | ".join(f"{n} (s)" for n in names) + " |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | " + " | ".join("---:" for _ in names) + " |")
    for r in rows:
        st = r["stages_s"]
        print(f"| {r['model']} | {r['input']} x{r['scale']:g} | {r['threads']} | {r['wall_s']} | {r['user_s']} | "
              f"{r['sys_s']} | {r['peak_rss_mib']} | " + " | ".join(str(st.get(n, 0.0)) for n in names) + " |")
    print(f"# load average after {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

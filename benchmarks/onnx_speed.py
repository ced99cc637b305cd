"""ONNX Runtime against the torch path: time and peak memory of ``ciaosr upscale``.

Each setting runs in its own subprocess, which runs the real command in-process
(``ciaosr upscale in.png --scale 4 --threads N --backend B``) on a synthetic picture and
reports its wall time, CPU time, peak resident set size (``ru_maxrss``) and the 1-minute
load average at the end. Models: the shipped EDSR-baseline LIIF, and EDSR-baseline CiaoSR
(random weights, seed 0: no trained CiaoSR ships; the weights do not change the work).
Both are exported once, before any timing, into ``--workdir``; an export is not timed.

    python benchmarks/onnx_speed.py                       # 192 x 192 x4, 1 and 2 threads
    python benchmarks/onnx_speed.py --large               # and 1024 x 1024 x4 (slow on 2 cores)
    python benchmarks/onnx_speed.py --profile             # where the time goes, per op kind

Repeats go round the settings in turn, so a change in the machine's load falls on all of
them alike; compare the ratios of one run. Prints one JSON line per run, then a markdown
table of the medians with torch / onnxruntime time and memory ratios.
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
from pathlib import Path

from child_run import run_child  # benchmarks/ is the script folder, on sys.path
from machine_info import machine_summary
from upscale_memory import synthetic_image

MODELS = ("liif", "ciaosr")


def prepare(workdir: Path) -> dict[str, dict[str, str]]:
    """model -> {backend: --model argument}: the torch checkpoints and their exported pairs."""
    import torch

    import ciaosr
    from ciaosr.onnx.export import export_onnx

    workdir.mkdir(parents=True, exist_ok=True)
    out = {}
    for short in MODELS:
        onnx_path = workdir / f"{short}.onnx"
        if short == "liif":
            torch_arg, model = "edsr-baseline-liif", None
        else:
            torch_arg = str(workdir / "ciaosr.safetensors")
            if not Path(torch_arg).exists():
                torch.manual_seed(0)
                ciaosr.save_checkpoint(ciaosr.build_model("edsr-baseline-ciaosr"), torch_arg)
            model = None
        if not onnx_path.exists():
            model = ciaosr.load_model(torch_arg)
            t0 = time.perf_counter()
            export_onnx(model, onnx_path)
            print(f"exported {short} in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        out[short] = {"torch": torch_arg, "onnxruntime": str(onnx_path)}
    return out


def child(args) -> None:
    from PIL import Image

    from ciaosr.cli.main import main

    with tempfile.TemporaryDirectory() as d:
        src, dst = os.path.join(d, "in.png"), os.path.join(d, "out.png")
        Image.fromarray(synthetic_image(args.size)).save(src)
        argv = ["upscale", src, "--scale", "4", "-o", dst, "--device", "cpu", "--threads", str(args.threads),
                "--backend", args.backend, "--model", args.model_arg]
        t0 = time.perf_counter()
        rc = main(argv)
        dt = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({
        "model": args.model, "backend": args.backend, "threads": args.threads, "input": f"{args.size}x{args.size}",
        "rc": rc, "seconds": round(dt, 2), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1), "load_avg_1min": round(os.getloadavg()[0], 2)}))


def profile(args, models) -> None:
    """Per op kind: ONNX Runtime's own profile of one 192 x 192 x4 image (encode and query
    graphs) and torch's profiler on the same image, at ``--threads[0]`` threads."""
    import torch
    from torch.profiler import ProfilerActivity, profile as torch_profile

    import ciaosr
    from ciaosr.inference.upscale import upscale_tensor
    from ciaosr.onnx import runtime as ort_backend

    torch.set_num_threads(args.threads[0])
    lr = torch.from_numpy(synthetic_image(args.size)).permute(2, 0, 1)[None].float() / 255
    size = (4 * args.size, 4 * args.size)
    cpu = torch.device("cpu")
    for short in args.models:
        real_session = ort_backend._session

        def profiled(path, threads):
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.enable_profiling = True
            options.profile_file_prefix = str(Path(args.workdir) / f"profile-{short}-{Path(path).stem}")
            return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

        ort_backend._session = profiled
        try:
            om = ort_backend.OnnxModel(models[short]["onnxruntime"])
        finally:
            ort_backend._session = real_session
        upscale_tensor(lr, size, om, device=cpu)
        totals: dict[str, float] = {}
        for sess, graph in ((om._encode, "encode"), (om._query, "query")):
            trace = json.load(open(sess.end_profiling()))
            for ev in trace:
                if ev.get("cat") == "Node" and ev["name"].endswith("_kernel_time"):
                    key = f"{graph}:{ev['args']['op_name']}"
                    totals[key] = totals.get(key, 0.0) + ev["dur"] / 1e6
        print(f"\n{short}, onnxruntime, {args.size} x {args.size} x4, {args.threads[0]} thread(s): seconds per op kind")
        for key, sec in sorted(totals.items(), key=lambda kv: -kv[1])[:12]:
            print(f"  {key:32s} {sec:7.2f}")
        model = ciaosr.load_model(models[short]["torch"])
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            upscale_tensor(lr, size, model, device=cpu)
        print(f"{short}, torch: seconds per op (self CPU time, summed over threads)")
        for ev in sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:12]:
            print(f"  {ev.key:32s} {ev.self_cpu_time_total / 1e6:7.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--size", type=int, default=192, help="input side (default 192)")
    ap.add_argument("--large", action="store_true", help="also 1024 x 1024 (minutes per run on 2 cores)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "ciaosr-onnx-speed"))
    ap.add_argument("--profile", action="store_true", help="per-op profiles instead of the timings")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--model-arg", help=argparse.SUPPRESS)
    ap.add_argument("--backend", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        args.threads = args.threads[0]
        child(args)
        return 0
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} UTC, {machine_summary()}", flush=True)
    models = prepare(Path(args.workdir))
    if args.profile:
        profile(args, models)
        return 0
    sizes = [args.size] + ([1024] if args.large else [])
    settings = [(m, b, t, s) for s in sizes for m in args.models for t in args.threads
                for b in ("torch", "onnxruntime")]
    rows = []
    for _ in range(args.repeats):
        for model, backend, threads, size in settings:
            row = run_child([__file__, "--child", "--model", model, "--model-arg", models[model][backend],
                             "--backend", backend, "--threads", str(threads), "--size", str(size)])
            if row is not None:
                rows.append(row)
    print("\n| model | input | threads | torch s | onnxruntime s | torch / ort | torch MiB | ort MiB | load |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for model, _, threads, size in settings[::2]:
        pick = {b: [r for r in rows if (r["model"], r["backend"], r["threads"], r["input"]) ==
                    (model, b, threads, f"{size}x{size}")] for b in ("torch", "onnxruntime")}
        if not all(pick.values()):
            continue
        sec = {b: statistics.median(r["seconds"] for r in rs) for b, rs in pick.items()}
        mib = {b: max(r["peak_rss_mib"] for r in rs) for b, rs in pick.items()}
        load = statistics.median(r["load_avg_1min"] for rs in pick.values() for r in rs)
        print(f"| {model} | {size}x{size} x4 | {threads} | {sec['torch']:.2f} | {sec['onnxruntime']:.2f} | "
              f"{sec['torch'] / sec['onnxruntime']:.2f} | {mib['torch']:.0f} | {mib['onnxruntime']:.0f} | {load:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

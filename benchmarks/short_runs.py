"""What a short training run gets out of a frozen encoder and of bf16.

Each setting trains edsr-baseline-ciaosr from the shipped official LIIF encoder with
configs/edsr-baseline-ciaosr-short-gpu.yaml (cosine learning rate) on the shared training
images for ``--steps`` iterations (or ``--minutes`` of wall-clock time, through
``train.max_minutes``), then validates on the first ``--val-images`` Set5 images at x4
(LIIF protocol). The table gives the steps, the training time, iterations/s, the last
logged loss and that PSNR. The settings run one after the other in this process with
``--threads`` threads; other load on the machine slows them (the load average is printed),
so equal steps compare quality more fairly than equal minutes on a shared machine.

    python benchmarks/short_runs.py --steps 40 --threads 1 --batch 2
    python benchmarks/short_runs.py --settings frozen-bf16 --minutes 1   # one setting, by time
    python benchmarks/short_runs.py --settings frozen-bf16 --steps 100 --lr 1e-3
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from ciaosr import CiaosrError
from ciaosr.training.config import load_config
from ciaosr.training.trainer import Trainer
from machine_info import cpu_name  # benchmarks/ is the script folder, on sys.path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "edsr-baseline-ciaosr-short-gpu.yaml"
SETTINGS = {  # name: (freeze_encoder, precision)
    "trained-fp32": (False, "fp32"),
    "trained-bf16": (False, "bf16"),
    "frozen-fp32": (True, "fp32"),
    "frozen-bf16": (True, "bf16"),
}


def run_setting(name: str, args, out: Path) -> dict:
    freeze, precision = SETTINGS[name]
    budget = [f"train.max_minutes={args.minutes}"] if args.minutes else [f"train.iterations={args.steps}",
                                                                          "train.max_minutes=null"]
    overrides = [f"name={name}", f"data_root={args.data_root}", f"output_dir={out}", "device=cpu",
                 f"threads={args.threads}", f"freeze_encoder={str(freeze).lower()}", f"train.precision={precision}",
                 f"train.batch_size={args.batch}", f"optimizer.lr={args.lr}", "train.log_every=5", "train.progress=false",
                 "data.num_workers=1", "val.every=0", "train.save_every=100000", f"val.max_images={args.val_images}",
                 *budget]
    trainer = Trainer(load_config(CONFIG, overrides))
    t0 = time.perf_counter()
    result = trainer.run()
    seconds = time.perf_counter() - t0
    rows = [json.loads(line) for line in (out / name / "metrics.jsonl").read_text().splitlines() if line.strip()]
    losses = [r for r in rows if "loss" in r]
    val = [r for r in rows if "val" in r]
    rates = [r["it_per_s"] for r in losses[1:]] or [r["it_per_s"] for r in losses] or [float("nan")]
    return {"setting": name, "freeze_encoder": freeze, "precision": precision, "steps": result.step,
            "seconds": seconds, "it_s": statistics.median(rates), "loss": losses[-1]["loss"] if losses else None,
            "psnr": val[-1]["val_mean"] if val else None}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    p.add_argument("--steps", type=int, default=40, help="iterations of each setting (default 40)")
    p.add_argument("--minutes", type=float, default=None,
                   help="a time budget for each setting instead (train.max_minutes)")
    p.add_argument("--val-images", type=int, default=5, help="Set5 images validated on (default all 5)")
    p.add_argument("--lr", type=float, default=1e-4, help="starting learning rate (default 1e-4, the config's)")
    p.add_argument("--batch", type=int, default=2, help="batch size (the paper: 16)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-root", default=str(Path(os.environ.get("CIAOSR_SHARED", REPO.parent / "shared"))
                                             / "datasets"))
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args(argv)
    load = [os.getloadavg()[0]]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.settings:
            rows.append(run_setting(name, args, Path(tmp)))
            load.append(os.getloadavg()[0])
            print(json.dumps(rows[-1]), flush=True)
    print(f"\n- date: {datetime.date.today().isoformat()}")
    print(f"- machine: {cpu_name()} ({os.cpu_count()} logical CPUs), torch {torch.__version__}, "
          f"{args.threads} thread(s), Python {platform.python_version()}")
    print(f"- system load average (1 min) before / after each setting: {' / '.join(f'{x:.1f}' for x in load)}")
    each = f"{args.minutes:g} minutes (train.max_minutes)" if args.minutes else f"{args.steps} iterations"
    print(f"- edsr-baseline-ciaosr from the LIIF encoder, {CONFIG.name}, batch {args.batch} x 48x48 LR crops, "
          f"2304 queries, {each} each, cosine learning rate from {args.lr:g}; Set5 x4 PSNR on the first "
          f"{args.val_images} images, after training (seconds: the whole run, that validation included)")
    print(f"- command: python benchmarks/short_runs.py {' '.join(sys.argv[1:])}")
    print()
    print("| setting | steps | seconds (run, with validation) | iterations/s (median of the logged rates) | "
          "last loss | Set5 x4 PSNR (dB) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        loss = f"{r['loss']:.4f}" if r["loss"] is not None else "-"
        psnr = f"{r['psnr']:.2f}" if r["psnr"] is not None else "-"
        print(f"| {r['setting']} | {r['steps']} | {r['seconds']:.0f} | {r['it_s']:.3f} | {loss} | {psnr} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except CiaosrError as exc:
        raise SystemExit(f"error: {exc}") from None

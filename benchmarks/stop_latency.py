"""How long ``ciaosr train`` takes to end after SIGTERM sent in the middle of a step.

Starts ``ciaosr train ARGS`` (with ``train.log_every=1`` and ``train.progress=false``
added), waits until ``--rows`` more steps have been logged in the run folder's
metrics.jsonl (0: until the loop starts, i.e. the "starting" or "resuming" line),
then ``--into`` seconds more, sends SIGTERM and times the exit. Prints the exit status,
the seconds from the signal to the exit, the mean step time logged, and the last lines
the command printed (the state it saved).

``--no-onednn`` runs the command with oneDNN turned off (``torch.backends.mkldnn``),
which makes bf16 take the emulated kernels of a CPU without native bf16
(benchmarks/bf16_matmul.py). ``--src DIR`` runs another checkout's ``src`` (e.g. an
older commit, for a before / after comparison).

    python benchmarks/stop_latency.py --into 5 -- --config configs/edsr-baseline-ciaosr.yaml \\
        --threads 2 --set 'data.train=[DIV2K-mini/HR]' --set train.batch_size=16 --set data.num_workers=0 \\
        --set output_dir=/tmp/stop --set train.precision=bf16
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from machine_info import cpu_name  # benchmarks/ is the script folder, on sys.path

NO_ONEDNN = ("import sys, torch; torch.backends.mkldnn.enabled = False; from ciaosr.cli.main import main; "
             "sys.exit(main(sys.argv[1:]))")


def loss_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if "loss" in r]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1, help="steps to see logged before waiting --into (default 1)")
    ap.add_argument("--into", type=float, default=5.0, help="seconds after that before SIGTERM (default 5)")
    ap.add_argument("--no-onednn", action="store_true", help="run with oneDNN off (emulated bf16)")
    ap.add_argument("--src", default=None, help="another checkout's src folder to run")
    ap.add_argument("train_args", nargs=argparse.REMAINDER, help="-- then the arguments of ciaosr train")
    args = ap.parse_args()
    train_args = [a for a in args.train_args if a != "--"] + ["--set", "train.log_every=1",
                                                              "--set", "train.progress=false"]
    cfg_cmd = [sys.executable, "-m", "ciaosr", "train", *train_args, "--print-config"]
    env = dict(os.environ)
    if args.src:
        env["PYTHONPATH"] = os.path.abspath(args.src) + os.pathsep + env.get("PYTHONPATH", "")
    import yaml

    cfg = yaml.safe_load(subprocess.run(cfg_cmd, env=env, capture_output=True, text=True, check=True).stdout)
    metrics = Path(cfg["output_dir"]).expanduser() / cfg["name"] / "metrics.jsonl"
    before = len(loss_rows(metrics))
    launcher = [sys.executable, "-c", NO_ONEDNN] if args.no_onednn else [sys.executable, "-m", "ciaosr"]
    print(f"{datetime.date.today()}, {cpu_name()}{', oneDNN off' if args.no_onednn else ''}: "
          f"ciaosr train {' '.join(train_args)}", flush=True)
    proc = subprocess.Popen([*launcher, "train", *train_args], env=env, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    started = threading.Event()

    def read() -> None:
        for line in proc.stderr:
            lines.append(line.rstrip("\n"))
            if line.startswith(("starting:", "resuming ")):
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    started.wait()
    while len(loss_rows(metrics)) < before + args.rows and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(args.into)
    done = loss_rows(metrics)
    in_progress = done[-1]["step"] + 1 if done else "1"
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    status = proc.wait()
    latency = time.monotonic() - t0
    reader.join()
    rows = loss_rows(metrics)[before:]
    step_s = f"{1 / rows[-1]['it_per_s']:.1f} s per step" if rows else "no step logged"
    print(f"exit status {status}, {latency:.2f} s after SIGTERM ({args.into:g} s into step {in_progress}; "
          f"{step_s})")
    print("\n".join(lines[-3:]))


if __name__ == "__main__":
    main()

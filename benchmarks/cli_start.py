"""How long the command line takes to start, against ``import torch`` alone.

Wall time of ``python -c "import torch"``, ``ciaosr --help``, ``ciaosr models`` with an
empty cache (cold: the table is made with torch and stored) and ``ciaosr models`` again
(warm: read from the cache, without torch), each run ``--repeats`` times as a new process
of this interpreter (``python -m ciaosr``), with a temporary ``$XDG_CACHE_HOME``:

    python benchmarks/cli_start.py --repeats 3
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import tempfile
import time

from machine_info import machine_summary  # benchmarks/ is the script folder, on sys.path


def wall(argv: list[str], cache: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *argv], check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "XDG_CACHE_HOME": cache})
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    print(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {machine_summary()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    cases = {"import torch": ["-c", "import torch"], "ciaosr --help": ["-m", "ciaosr", "--help"]}
    with tempfile.TemporaryDirectory() as tmp:
        times = {name: [wall(argv, tmp) for _ in range(args.repeats)] for name, argv in cases.items()}
        times["ciaosr models (cold)"] = [wall(["-m", "ciaosr", "models"], tempfile.mkdtemp(dir=tmp))
                                         for _ in range(args.repeats)]
        times["ciaosr models (warm)"] = [wall(["-m", "ciaosr", "models"], tmp) for _ in range(args.repeats + 1)][1:]
    for name, seconds in times.items():
        print(f"{name:<22} {' '.join(f'{s:5.2f}' for s in seconds)} s")
    print(f"load average afterwards {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

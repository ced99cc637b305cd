"""Run ``ciaosr eval --table N`` and record how: date, machine, load, command, time.

Everything after ``--`` goes to ``ciaosr eval`` unchanged; the script prints a header
(the UTC time it finished, CPU and its flags, torch, the 1-minute load average before and after, the
command and its wall-clock time) and then the command's Markdown, ready for a doc.

    python benchmarks/paper_table.py -- --table 2 --models edsr-baseline-liif \\
        --data-root ../shared/datasets --datasets Set5 Set14 --device cpu --json table2.json
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time

import torch

from machine_info import machine_summary  # benchmarks/ is the script folder, on sys.path


def main(argv: list[str]) -> int:
    if "--" in argv:
        argv = argv[argv.index("--") + 1:]
    if "--table" not in argv:
        print("usage: python benchmarks/paper_table.py -- --table N [ciaosr eval options]", file=sys.stderr)
        return 2
    cmd = ["ciaosr", "eval", *argv]
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "ciaosr", "eval", *argv], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    load1 = os.getloadavg()[0]
    print(f"Finished {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine_summary()}, "
          f"torch {torch.__version__}, 1-minute load average {load0:.1f} before and {load1:.1f} after "
          f"(other jobs share the cores); {seconds:.0f} s.\n")
    print(f"```bash\n{shlex.join(cmd)}\n```\n")
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

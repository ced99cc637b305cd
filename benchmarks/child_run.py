"""Running one benchmark setting in a fresh process, as the scripts here do."""

from __future__ import annotations

import json
import subprocess
import sys


def run_child(args: list[str]) -> dict | None:
    """Run ``python <args>`` and return the JSON object on the last line of its output,
    printing it; None (and the child's stderr) if it failed."""
    res = subprocess.run([sys.executable, *args], capture_output=True, text=True)
    if res.returncode != 0:
        print(res.stderr, file=sys.stderr)
        return None
    row = json.loads(res.stdout.strip().splitlines()[-1])
    print(json.dumps(row), flush=True)
    return row

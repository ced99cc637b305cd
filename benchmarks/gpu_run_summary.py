"""The markdown summary of a benchmarks/gpu_run.sh output folder: the steps and their
exit codes, the decoder speed table, the training curve in brief, and the evaluation of
the trained CiaoSR next to the shipped LIIF. Reads only what is there.

    python benchmarks/gpu_run_summary.py OUT_DIR > OUT_DIR/summary.md
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def steps(out: Path) -> list[str]:
    path = out / "steps.tsv"
    if not path.is_file():
        return ["(no steps.tsv)"]
    rows = [line.split("\t") for line in path.read_text().splitlines()[1:] if line.strip()]
    return ["| step | exit | seconds |", "| --- | --- | ---: |", *(f"| {n} | {rc} | {s} |" for n, rc, s in rows)]


def speed(out: Path) -> list[str]:
    path = out / "decoder_speed.json"
    if not path.is_file():
        return ["(no decoder_speed.json)"]
    from decoder_speed import table  # benchmarks/ is this script's folder, on sys.path

    data = json.loads(path.read_text())
    return [f"Machine: {data.get('machine', '?')}", "", table(data["rows"])]


def training(out: Path) -> list[str]:
    path = out / "train_metrics.jsonl"
    if not path.is_file():
        return ["(no train_metrics.jsonl)"]
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    losses = [r for r in rows if "loss" in r]
    vals = [r for r in rows if "val" in r]
    lines = []
    if losses:
        rates = [r["it_per_s"] for r in losses[1:]] or [losses[0]["it_per_s"]]
        lines.append(f"- {losses[-1]['step']} iterations; loss {losses[0]['loss']:.4f} (step {losses[0]['step']}) -> "
                     f"{losses[-1]['loss']:.4f} (step {losses[-1]['step']}); median {statistics.median(rates):.2f} "
                     f"iterations/s; last learning rate {losses[-1]['lr']:.3g}")
    for r in vals:
        shown = ", ".join(f"{k} {v:.3f}" for k, v in r["val"].items())
        lines.append(f"- validation at step {r['step']}: {shown} dB")
    return lines or ["(empty train_metrics.jsonl)"]


def evaluation(out: Path) -> list[str]:
    from ciaosr.evaluation.report import format_table

    lines = []
    for name in ("ciaosr", "liif"):
        path = out / f"eval_{name}.json"
        if not path.is_file():
            lines += [f"(no eval_{name}.json)", ""]
            continue
        report = json.loads(path.read_text())
        lines += [f"Model {report.get('model', name)}:", "", format_table(report), ""]
    return lines


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: gpu_run_summary.py OUT_DIR", file=sys.stderr)
        return 2
    out = Path(argv[0])
    parts = [("Steps", steps), ("Decoder speed (whole-image x4)", speed), ("Training", training),
             ("Evaluation", evaluation)]
    print(f"# GPU run: {out}\n")
    for title, fn in parts:
        try:
            body = fn(out)
        except Exception as exc:  # a summary of what is there: one broken part must not hide the others
            body = [f"(could not summarise: {type(exc).__name__}: {exc})"]
        print(f"## {title}\n\n" + "\n".join(body).rstrip() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

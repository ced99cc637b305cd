"""The Markdown of a paper-table report: for each model, our figures, the paper's and the
difference, one column per dataset and scale, then the notes (one line each)."""

from __future__ import annotations

import math

# Printed precision: the paper's (PSNR in dB to 2 decimals, SSIM and LPIPS to 3).
DIGITS = {"psnr": 2, "ssim": 3, "lpips": 3}


def _fmt(values: dict | None, metrics: list[str], signed: bool = False) -> str:
    if not values:
        return ""
    parts = []
    for m in metrics:
        v = values.get(m)
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            parts.append("-")
        else:
            parts.append(f"{v:+.{DIGITS.get(m, 4)}f}" if signed else f"{v:.{DIGITS.get(m, 4)}f}")
    return " / ".join(parts)


def _ours(cell: dict, metrics: list[str]) -> str:
    if cell["missing"]:
        return "no data"
    text = _fmt(cell["ours"], metrics)
    n, full = cell["num_images"], cell["expected_images"]
    if text and full and n != full:
        text += f" ({n}/{full} images)"
    return text


def format_markdown(report: dict) -> str:
    metrics = report["metrics"]
    what = " / ".join(m.upper() for m in metrics)
    lines = [f"CiaoSR paper, Table {report['table']}: {report['title']}. Scored on {report['channel']}, "
             f"{report['protocol']} protocol; {what}: ours, the paper's, ours minus the paper's.", ""]
    columns = [(ds, s) for ds in report["datasets"] for s in report["scales"]]
    lines.append("| model | | " + " | ".join(f"{ds} x{s}" for ds, s in columns) + " |")
    lines.append("| --- | --- |" + " ---: |" * len(columns))
    by_key = {(c["model"], c["variant"], c["dataset"], c["scale"]): c for c in report["cells"]}
    variants = report["variants"] or [None]
    for m in report["models"]:
        for variant in variants:
            cells = [by_key[(m["model"], variant, ds, s)] for ds, s in columns]
            name = m["model"] + (f", {variant}" if variant else "")
            lines.append(f"| {name} | ours | " + " | ".join(_ours(c, metrics) for c in cells) + " |")
            if m["row"] is None:
                continue
            lines.append(f"| | paper ({m['row']}) | "
                         + " | ".join(_fmt(c["paper"], metrics) + (f" ({c['paper_note']})" if c.get("paper_note") else "")
                                      for c in cells) + " |")
            lines.append("| | difference | " + " | ".join(_fmt(c["difference"], metrics, signed=True) for c in cells)
                         + " |")
    notes = [*report["notes"], *_mark_legend(report)]
    if notes:
        lines.append("")
        lines.extend(f"- {note}" for note in notes)
    return "\n".join(lines)


def _mark_legend(report: dict) -> list[str]:
    """One line per mark shown beside a paper's figure (``(sic)``): what it means, and where."""
    where: dict[str, list[str]] = {}
    rows = {m["model"]: m["row"] for m in report["models"]}
    for c in report["cells"]:
        if c.get("paper_note") and rows.get(c["model"]):
            cell = f"{rows[c['model']]} {c['dataset']} x{c['scale']:g}"
            if cell not in where.setdefault(c["paper_note"], []):
                where[c["paper_note"]].append(cell)
    meaning = report.get("source", {}).get("marks", {})
    return [f"({mark}) {', '.join(cells)}: {meaning.get(mark, 'so marked in the transcription')}"
            for mark, cells in where.items()]

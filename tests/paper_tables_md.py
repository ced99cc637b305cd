"""Read the published tables out of shared/docs/paper-tables.md, independently of the
package, so a test can check the shipped ``ciaosr/paper/published.json`` against them."""

from __future__ import annotations

import re
from pathlib import Path

# What each table's markdown means: its metrics, and how a column header and a cell map
# to (dataset, scale, steps) cells.
LAYOUT = {
    1: {"metrics": ["psnr"], "datasets": ["DIV2K"], "backbone": None},
    2: {"metrics": ["psnr"], "scales": [2, 3, 4], "backbone": None},
    3: {"metrics": ["psnr"], "scales": [6, 8, 12], "backbone": None},
    6: {"metrics": ["psnr", "ssim"], "scales": [12], "model": "RDN-CiaoSR"},
    8: {"metrics": ["ssim", "lpips"], "datasets": ["Urban100"], "backbone": "RDN"},
}
STEPS = {"x2 -> x4 -> x12": (2, 4, 12), "x2 -> x12": (2, 12), "x12 in one step": None}


def _rows(block: str) -> list[list[str]]:
    lines = [ln for ln in block.splitlines() if ln.startswith("|")]
    return [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in lines if not ln.startswith("| ---")]


def _value(text: str):
    """'29.96 (sic)' -> (29.96, 'sic'); '-' -> (None, None)."""
    text = text.strip()
    if text == "-":
        return None, None
    m = re.fullmatch(r"([0-9.]+)(?: \((\w+)\))?", text)
    assert m, text
    return float(m.group(1)), m.group(2)


def parse(md_path: Path) -> dict[int, dict]:
    """{table number: {"title", "rows": {row name: {(dataset, scale, steps): {metric: value, "note"?}}}}}"""
    text = Path(md_path).read_text()
    tables = {}
    for m in re.finditer(r"^## Table (\d+): (.*)$", text, re.M):
        number = int(m.group(1))
        if number not in LAYOUT:
            continue
        lay = LAYOUT[number]
        block = text[m.end():].split("\n## ", 1)[0]
        header, *body = _rows(block)
        rows: dict[str, dict] = {}
        for cells in body:
            label, values = cells[0], cells[1:]
            if number == 6:
                name, steps = lay["model"], STEPS[label]
            else:
                name, steps = (f"{lay['backbone']}-{label}" if lay.get("backbone") else label), None
            out = rows.setdefault(name, {})
            for col, cell in zip(header[1:], values):
                parts = [p.strip() for p in cell.split(" / ")]
                if number in (1, 8):  # one scale per column, one value per metric
                    keys = [(lay["datasets"][0], int(col.lstrip("x")), steps)]
                    groups = [parts]
                elif number == 6:  # one dataset per column: PSNR / SSIM
                    keys = [(col.split()[0], 12, steps)]
                    groups = [parts]
                else:  # one dataset per column, one scale per value
                    keys = [(col, s, None) for s in lay["scales"]]
                    groups = [[p] for p in parts]
                for key, vals in zip(keys, groups):
                    entry = {}
                    for metric, v in zip(lay["metrics"], vals):
                        num, note = _value(v)
                        if num is not None:
                            entry[metric] = num
                        if note:
                            entry["note"] = note
                    if any(k in entry for k in lay["metrics"]):
                        out[key] = entry
        tables[number] = {"title": m.group(2).strip(), "rows": rows}
    return tables

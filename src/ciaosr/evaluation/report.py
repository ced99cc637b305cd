"""The markdown table of ``ciaosr eval``."""

from __future__ import annotations

from .protocol import METRICS


def format_table(report: dict) -> str:
    """Markdown table, datasets x scales; cells the metrics' means, e.g. ``PSNR / SSIM``."""
    results = report["results"]
    metrics = report.get("metrics") or list(METRICS)
    labels: list[str] = []
    for by_scale in results.values():
        for lab in by_scale:
            if lab not in labels:
                labels.append(lab)
    what = " / ".join(m.upper() for m in metrics)
    head = f"| {report['protocol']} protocol, {what} | " + " | ".join(f"x{lab}" for lab in labels) + " |"
    lines = [head, "| --- |" + " --- |" * len(labels)]
    for name, by_scale in results.items():
        cells = []
        for lab in labels:
            e = by_scale.get(lab)
            if e is None:
                cells.append("")
                continue
            cells.append(" / ".join(f"{e[m]:.4f}" for m in metrics))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)

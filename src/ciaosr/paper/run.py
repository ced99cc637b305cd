"""Run one of the paper's tables for given models: our figure beside the published one.

Each model is evaluated with ``ciaosr.evaluation.evaluate`` on the table's datasets and
scales (and, for Table 6, each multi-step variant), under the chosen protocol, and
every cell is put next to the published cell of the model's row: the row whose model
name is the model's architecture (``rdn-ciaosr`` -> ``RDN-CiaoSR``; ``bicubic`` ->
``Bicubic``). What keeps a cell or a row from being compared is said in one line:
a dataset missing under the data root, a model without a row in the table, a model
whose size differs from the paper's, a metric that cannot run (LPIPS without its
backbone weights).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

from ..data.sets.catalog import find_eval_set
from ..data.sets.layout import resolve_dataset
from ..distributed import ShardGroup, device_for
from ..errors import CiaosrError
from ..evaluation.bicubic import BICUBIC
from ..evaluation.runner import evaluate, load_eval_model
from .published import PublishedTable, load_table, source


def _pick(what: str, given: Sequence | None, allowed: Sequence, table: PublishedTable, canon) -> list:
    if not given:
        return list(allowed)
    out = []
    for g in given:
        c = canon(g)
        if c not in allowed:
            raise CiaosrError(f"Table {table.number} has no {what} {c} (its {what}s: "
                              f"{', '.join(str(a) for a in allowed)})")
        out.append(c)
    return list(dict.fromkeys(out))


def _canon_dataset(name: str) -> str:
    es = find_eval_set(name)
    return es.name if es else name


def _canon_scale(s) -> int | float:
    f = float(s)
    return int(f) if f.is_integer() else f


def architecture(model) -> str:
    """The project's model name of a loaded model (``bicubic`` for the baseline)."""
    if getattr(model, "name", None) == BICUBIC:
        return BICUBIC
    spec = getattr(model, "spec", None) or {}
    return spec.get("name") or type(model).__name__


def _size_note(label: str, arch: str, model, row_name: str) -> str | None:
    """One line when the model is not the paper's size (a smaller encoder, say)."""
    if arch == BICUBIC:
        return None
    from ..models.factory import count_parameters, default_parameter_count

    ours, paper = count_parameters(model), default_parameter_count(arch)
    if ours != paper:
        return (f"{label}: {ours:,} parameters where the paper's {row_name} has {paper:,}: "
                f"not the paper's network, compared anyway")
    return None


def run_table(number: int, models: Sequence[str], data_root: str | os.PathLike, *,
              datasets: Sequence[str] | None = None, scales: Sequence[float] | None = None,
              protocol: str = "liif", device: str | None = None, chunk: int = 30000,
              precision: str = "fp32", lpips_net: str = "alex", lpips_weights: str | os.PathLike | None = None,
              progress: bool | None = None, group: ShardGroup | None = None) -> dict:
    """Evaluate ``models`` on Table ``number``'s cells and return the side-by-side report
    (``format_markdown`` prints it). ``datasets`` / ``scales`` choose some of the
    table's columns (default: all)."""
    table = load_table(number)
    if not models:
        raise CiaosrError("no models given")
    datasets = _pick("dataset", datasets, table.datasets, table, _canon_dataset)
    scales = _pick("scale", scales, table.scales, table, _canon_scale)
    root = Path(data_root)
    if not root.is_dir():
        raise CiaosrError(f"data root not found: {root}")
    notes: list[str] = []
    if protocol != "liif":
        notes.append(f"{protocol} protocol: the paper's figures are scored on {table.channel} under the LIIF "
                     f"protocol; these are scored as the official CiaoSR code scores (Y of 8-bit outputs, crop s)")
    present: dict[str, str] = {}  # canonical name -> the folder's name under root
    missing: dict[str, str] = {}
    for ds in datasets:
        try:
            present[ds] = resolve_dataset(root, ds).name
        except CiaosrError as exc:
            missing[ds] = str(exc)
            notes.append(f"{ds}: missing: {exc}")

    group = group or ShardGroup()
    dev = device_for(device, group.info)
    loaded = []  # check every model before any work
    labels = list(dict.fromkeys(str(m) for m in models))
    for label in labels:
        model = load_eval_model(label, dev)
        arch = architecture(model)
        row = table.row_for(arch)
        if row is None:
            notes.append(f"{label}: Table {table.number} has no {arch} row (its models: "
                         f"{', '.join(table.model_rows())}); our figures only")
        else:
            size = _size_note(label, arch, model, row.name)
            if size:
                notes.append(size)
        loaded.append((label, arch, row, model))

    metrics = list(table.metrics)
    cells: list[dict] = []
    evaluations: list[dict] = []
    skipped: dict[str, str] = {}
    for label, arch, row, model in loaded:
        for variant in table.variants:
            ours: dict = {}
            if present:
                rep = evaluate(label, root, list(present.values()), scales, protocol=protocol, metrics=metrics,
                               steps=list(variant.steps) if variant.steps else None, chunk=chunk, progress=progress,
                               model=model, device=str(dev), precision=precision, lpips_net=lpips_net,
                               lpips_weights=lpips_weights, skip_unavailable=True, group=group)
                skipped.update(rep["skipped"])
                ours = {ds: rep["results"][folder] for ds, folder in present.items()}
                evaluations.append({"model": label, "variant": variant.label or None, "report": rep})
            for ds in datasets:
                for s in scales:
                    cells.append(_cell(table, label, row, variant, ds, s, ours, missing, metrics))
    for name, why in skipped.items():
        notes.append(f"{name} not computed: {why}")
    return {
        "table": table.number, "title": table.title, "channel": table.channel, "source": source(),
        "protocol": protocol, "metrics": metrics, "data_root": str(root), "datasets": datasets, "scales": scales,
        "variants": [v.label for v in table.variants if v.label],
        "models": [{"model": label, "architecture": arch, "row": row.name if row else None}
                   for label, arch, row, _ in loaded],
        "cells": cells, "notes": notes, "evaluations": evaluations,
    }


def _cell(table: PublishedTable, label: str, row, variant, ds: str, s, ours: dict, missing: dict,
          metrics: list[str]) -> dict:
    from ..data.benchmark import scale_label

    cell = {"model": label, "variant": variant.label or None, "dataset": ds, "scale": s,
            "ours": None, "paper": None, "difference": None, "num_images": None,
            "expected_images": None, "missing": missing.get(ds)}
    es = find_eval_set(ds)
    cell["expected_images"] = es.images if es else None
    entry = ours.get(ds, {}).get(scale_label(s))
    if entry is not None:
        cell["ours"] = {m: entry[m] for m in metrics if m in entry}
        cell["num_images"] = entry["num_images"]
    pub = table.published(row, ds, s, variant.steps) if row is not None else None
    if pub is not None:
        cell["paper"] = {m: pub[m] for m in metrics if m in pub}
        if pub.get("note"):
            cell["paper_note"] = pub["note"]
    if cell["ours"] and cell["paper"]:
        cell["difference"] = {m: cell["ours"][m] - cell["paper"][m] for m in metrics
                              if m in cell["ours"] and m in cell["paper"] and math.isfinite(cell["ours"][m])}
    return cell

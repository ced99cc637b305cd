"""Run a model over benchmark sets and scales, and score it under one protocol."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import torch

from ..distributed import ShardGroup, device_for
from ..imageio import image_size, list_images, write_tensor_png
from ..data.benchmark import BenchmarkSet, is_integer_scale, load_rgb, scale_label
from ..data.sets.layout import resolve_dataset
from ..runtime import Precision
from ..errors import CiaosrError
from ..geometry import scaled_size
from .bicubic import BICUBIC, BicubicModel
from .metric_set import NO_REFERENCE, PROTOCOL_METRICS, MetricSet
from .mmedit_tiling import tiled_upsample
from .protocol import PROTOCOLS, Protocol


def load_eval_model(name_or_path: str, device: torch.device):
    if name_or_path == BICUBIC:
        return BicubicModel()
    from .. import load_model

    model = load_model(name_or_path, device=device)
    return model.to(device).eval()


def parse_steps(text: str | None) -> list[float] | None:
    """'2,4,12' -> [2.0, 4.0, 12.0]; strictly increasing factors above 1."""
    if text is None or str(text).strip() == "":
        return None
    try:
        steps = [float(t) for t in str(text).replace(" ", "").split(",") if t]
    except ValueError:
        raise CiaosrError(f"--steps must be comma-separated numbers like 2,4,12, got {text!r}") from None
    if not steps or any(not math.isfinite(t) or t <= 1 for t in steps):
        raise CiaosrError(f"--steps factors must be above 1, got {text!r}")
    if any(b <= a for a, b in zip(steps, steps[1:])):
        raise CiaosrError(f"--steps must increase, got {text!r}")
    return steps


def step_chain(scale: float, steps: Sequence[float] | None) -> list[float]:
    """Scales (relative to the LR) reached one after the other; the last is ``scale``."""
    if not steps:
        return [scale]
    return [t for t in steps if t < scale] + [scale]


def super_resolve(model, lr: torch.Tensor, out_size: tuple[int, int], scale: float, protocol: Protocol,
                  steps: Sequence[float] | None = None, chunk: int = 30000) -> torch.Tensor:
    """(1, 3, h, w) LR in [0, 1] -> (1, 3, H, W) in [0, 1] following the protocol."""
    chain = step_chain(scale, steps)
    if len(chain) == 1 and protocol.uses_tiles(scale):
        si = int(scale)
        if out_size != (lr.shape[-2] * si, lr.shape[-1] * si):
            raise CiaosrError(f"tiled inference needs an HR of exactly {si}x the LR")
        return tiled_upsample(model, lr, si, chunk=chunk)
    h0, w0 = lr.shape[-2:]
    x = lr
    for k, t in enumerate(chain):
        size = out_size if k == len(chain) - 1 else scaled_size((h0, w0), t)
        x = model.upsample(x, size, chunk=chunk)
    return x


def save_png(img: torch.Tensor, path: Path) -> None:
    """(3, H, W) in [0, 1] -> 8-bit PNG, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_tensor_png(path, img)


def _mean(values: list[float]) -> float:
    return float(sum(values) / len(values)) if values else float("nan")


def evaluate(model_name: str, data_root: str | os.PathLike, datasets: Sequence[str], scales: Sequence[float], *,
             protocol: str = "liif", metrics: Sequence[str] = PROTOCOL_METRICS, steps: Sequence[float] | None = None,
             device: str | None = None, save_images: str | os.PathLike | None = None, chunk: int = 30000,
             progress: bool | None = None, model=None, precision: str | Precision = "fp32",
             lpips_net: str = "alex", lpips_weights: str | os.PathLike | None = None,
             skip_unavailable: bool = False, group: ShardGroup | None = None, compile: bool = False) -> dict:
    """Evaluate and return ``{"protocol", "model", "steps", "results": {set: {scale: ...}}}``.

    ``results[set][scale]`` holds the mean of each metric over the set and
    ``per_image`` ``{name: {"psnr": ..., "ssim": ...}}``. ``model`` may be given
    directly (anything with ``upsample(lr, (h, w), chunk=...)``); otherwise
    ``model_name`` is loaded (``bicubic`` is built in). ``precision`` ``bf16``/``fp16``
    runs the model under ``torch.autocast``; the metrics are always computed in float32.
    ``metrics`` may be any of ``metric_set.METRICS``; ``lpips_net`` /
    ``lpips_weights`` choose LPIPS's backbone, and ``skip_unavailable`` drops LPIPS
    when its weights are missing instead of stopping.

    ``group``: the processes of a torchrun job (``ShardGroup.join()``) to split the
    images over; each process computes on its own device (``cuda:<LOCAL_RANK>`` with
    CUDA), rank 0 collects the scores and every process gets the same report, equal to
    one process's (the means are summed in the same order).
    """
    proto = _protocol(protocol)
    mset = MetricSet(metrics, protocol=protocol, lpips_net=lpips_net, lpips_weights=lpips_weights,
                     skip_unavailable=skip_unavailable)
    if not datasets:
        raise CiaosrError("no datasets given")
    scales = _check_scales(scales)
    root = Path(data_root)
    if not root.is_dir():
        raise CiaosrError(f"data root not found: {root}")
    # Check every set and scale before loading the model, so mistakes fail fast.
    sets: dict[str, dict[float, BenchmarkSet]] = {}
    for name in datasets:
        d = resolve_dataset(root, name)
        sets[name] = {s: BenchmarkSet(d, s, protocol) for s in scales}
    group = group or ShardGroup()
    dev, precision, model = _setup(model_name, model, device, precision, group, compile)
    save_root = Path(save_images) if save_images else None

    items = [(name, s, i) for name, by_scale in sets.items() for s, bset in by_scale.items()
             for i in range(len(bset))]

    def score(k: int) -> dict[str, float]:
        name, s, i = items[k]
        pair = sets[name][s][i]
        border, (h, w) = proto.border(s, name), pair.hr.shape[-2:]
        if min(h, w) <= 2 * border:
            raise CiaosrError(f"{name}/{pair.name}: {w}x{h} is too small to score at x{scale_label(s)} "
                              f"(the protocol drops {border} pixels at each border)")
        sr = _upscale(model, pair.lr, tuple(pair.hr.shape[-2:]), s, proto, steps, chunk, dev, precision)
        values = proto.score(sr, pair.hr, s, name, mset.protocol_metrics)
        values.update(mset.score_extra(sr, pair.hr, proto.border(s, name)))
        if save_root is not None:
            save_png(sr, save_root / name / f"X{scale_label(s)}" / f"{pair.name}.png")
        return {m: values[m] for m in mset.names}

    def cost(k: int) -> int:  # the HR's pixels, from its header
        name, s, i = items[k]
        h, w = image_size(sets[name][s].hr_files[i])
        return h * w

    keys = [(name, s, str(sets[name][s].hr_files[i])) for name, s, i in items]
    labels = [f"{name} x{scale_label(s)}" for name, s, _ in items]
    scores = _run_items(group, keys, score, cost, labels, progress)
    report = None
    if group.is_main:
        results: dict[str, dict] = {}
        k = 0
        for name, by_scale in sets.items():
            results[name] = {}
            for s, bset in by_scale.items():
                per_image = {pair_name: scores[k + j] for j, pair_name in enumerate(bset.names())}
                k += len(bset)
                entry = _entry(per_image, mset.names)
                entry["lr_source"] = bset.lr_source
                entry["per_image"] = per_image
                results[name][scale_label(s)] = entry
        report = _report(model_name, protocol, steps, precision, mset, results)
    return group.announce(report)


def evaluate_folder(model_name: str, input_dir: str | os.PathLike, scales: Sequence[float], *,
                    protocol: str = "liif", metrics: Sequence[str] = NO_REFERENCE,
                    steps: Sequence[float] | None = None, device: str | None = None,
                    save_images: str | os.PathLike | None = None, chunk: int = 30000,
                    progress: bool | None = None, model=None, precision: str | Precision = "fp32",
                    group: ShardGroup | None = None, compile: bool = False) -> dict:
    """No-reference evaluation of real low-resolution images (no HR): each image of
    ``input_dir`` is upscaled by each scale (output ``round(h s)`` x ``round(w s)``) and
    the output is scored with no-reference metrics only (``niqe``, ``brisque``, ``piqe``).

    The report has the shape of ``evaluate``'s, with the folder's name as the one set;
    ``group`` splits the images over processes as there.
    """
    proto = _protocol(protocol)
    mset = MetricSet(metrics, protocol=protocol, reference=False)
    scales = _check_scales(scales)
    if protocol == "mmedit" and not all(is_integer_scale(s) for s in scales):
        raise CiaosrError("the mmedit protocol takes integer scales only")
    folder = Path(input_dir)
    files = list_images(folder)  # one-line error when it is not a folder
    if not files:
        raise CiaosrError(f"no images in {folder}")
    group = group or ShardGroup()
    dev, precision, model = _setup(model_name, model, device, precision, group, compile)
    save_root = Path(save_images) if save_images else None
    items = [(s, path) for s in scales for path in files]

    def score(k: int) -> dict[str, float]:
        s, path = items[k]
        lr = load_rgb(path)
        sr = _upscale(model, lr, scaled_size(tuple(lr.shape[-2:]), s), s, proto, steps, chunk, dev, precision)
        if save_root is not None:
            save_png(sr, save_root / folder.name / f"X{scale_label(s)}" / f"{path.stem}.png")
        return mset.score_extra(sr, None, 0)

    def cost(k: int) -> int:  # the output's pixels, from the LR's header
        s, path = items[k]
        h, w = scaled_size(image_size(path), s)
        return h * w

    labels = [f"{folder.name} x{scale_label(s)}" for s, _ in items]
    scores = _run_items(group, [(s, str(path)) for s, path in items], score, cost, labels, progress)
    report = None
    if group.is_main:
        by_scale: dict[str, dict] = {}
        for n, s in enumerate(scales):
            per_image = {path.stem: scores[n * len(files) + j] for j, path in enumerate(files)}
            entry = _entry(per_image, mset.names)
            entry["per_image"] = per_image
            by_scale[scale_label(s)] = entry
        report = _report(model_name, protocol, steps, precision, mset, {folder.name: by_scale})
        report["input"] = str(folder)
    return group.announce(report)


def _protocol(protocol: str) -> Protocol:
    if protocol not in PROTOCOLS:
        raise CiaosrError(f"unknown protocol {protocol!r} (choose from {', '.join(PROTOCOLS)})")
    return Protocol(protocol)


def _check_scales(scales: Sequence[float]) -> list[float]:
    if not scales:
        raise CiaosrError("no scales given")
    scales = [float(s) for s in scales]
    for s in scales:
        if not math.isfinite(s) or s <= 1:
            raise CiaosrError(f"scales must be above 1, got {s:g}")
    return scales


def _setup(model_name: str, model, device, precision, group: ShardGroup, compile: bool = False):
    dev = device_for(device, group.info)
    precision = Precision.for_device(precision, dev)
    if model is None:
        model = load_eval_model(model_name, dev)
    if compile and not isinstance(model, BicubicModel):
        from ..compilation import compile_model

        model = compile_model(model)
    return dev, precision, model


def _run_items(group: ShardGroup, keys: list, score, cost, labels: list[str], progress: bool | None) -> list | None:
    """``[score(0), ..., score(n - 1)]`` for the ``n`` items named by ``keys`` on rank 0
    (None in the other processes), each process scoring its share (``ShardGroup.share``,
    balanced by ``cost``); rank 0 shows one progress bar for all, labelled with the set
    and scale of the last image done."""
    n = len(keys)
    from tqdm.auto import tqdm

    group.same_items(keys)

    bar = tqdm(total=n, desc="eval", unit="img", leave=False,
               disable=True if not group.is_main else (not progress) if progress is not None else None)

    def arrived(k: int, _scores) -> None:
        bar.set_description(labels[k], refresh=False)
        bar.update(1)

    try:
        with group.results(n, arrived) as results:
            for k in group.share(n, cost):
                results.put(k, score(k))
            return results.gather()
    finally:
        bar.close()


def _upscale(model, lr_u8: torch.Tensor, out_size, s: float, proto: Protocol, steps, chunk: int,
             dev: torch.device, precision: Precision) -> torch.Tensor:
    """uint8 (3, h, w) LR -> the protocol's (3, H, W) output in [0, 1], float32 on ``dev``."""
    lr = (lr_u8.to(dev, torch.float32) / 255.0).unsqueeze(0)
    with torch.no_grad(), precision.autocast(dev):
        sr = super_resolve(model, lr, tuple(out_size), s, proto, steps, chunk)[0]
    return proto.finalize(sr.float())


def _entry(per_image: dict[str, dict[str, float]], names: Sequence[str]) -> dict:
    entry: dict = {m: _mean([v[m] for v in per_image.values()]) for m in names}
    entry["num_images"] = len(per_image)
    return entry


def _report(model_name, protocol: str, steps, precision: Precision, mset: MetricSet, results: dict) -> dict:
    return {
        "protocol": protocol,
        "model": str(model_name),
        "steps": list(steps) if steps else None,
        "precision": precision.value,
        "metrics": mset.names,
        "metric_settings": mset.settings,
        "skipped": mset.skipped,
        "results": results,
    }

"""Periodic validation PSNR during training, scored by ``ciaosr.evaluation``.

A validation set is a folder under ``data_root``: either a benchmark set
(``<set>/HR`` with optional ``LR_bicubic/X<s>``, read by ``BenchmarkSet`` exactly as
``ciaosr eval`` reads it) or a plain folder of HR images, whose LR inputs are made the
same way ``BenchmarkSet`` makes missing ones (MATLAB bicubic for integer s <= 4, else
PIL bicubic). PSNR follows the chosen protocol (``liif`` by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.benchmark import (BenchmarkPair, BenchmarkSet, is_integer_scale, load_rgb, matlab_downscale, modcrop,
                              on_the_fly_pair, scale_label)
from ..errors import CiaosrError
from ..evaluation.protocol import Protocol
from ..evaluation.runner import super_resolve
from ..imageio import list_images
from .config import DATA_ROOT_HINT


class HRFolderSet:
    """Pairs made from a folder of HR images (no ``HR/`` sub-folder, no LR files)."""

    def __init__(self, folder: Path, scale: float):
        self.dir = Path(folder)
        self.scale = float(scale)
        self.hr_files = list_images(self.dir)
        if not self.hr_files:
            raise CiaosrError(f"no images in validation folder {self.dir}")

    def __len__(self) -> int:
        return len(self.hr_files)

    def __getitem__(self, i: int) -> BenchmarkPair:
        path = self.hr_files[i]
        hr = load_rgb(path)
        s = self.scale
        if is_integer_scale(s) and s <= 4:
            hr = modcrop(hr, int(s))
            return BenchmarkPair(path.stem, hr, matlab_downscale(hr, int(s)), "generated")
        hr, lr = on_the_fly_pair(hr, s)
        return BenchmarkPair(path.stem, hr, lr, "generated")


def open_val_set(path: Path, scale: float, protocol: str):
    path = Path(path)
    if not path.is_dir():
        raise CiaosrError(f"validation folder not found: {path} ({DATA_ROOT_HINT})")
    if (path / "HR").is_dir() or (path / "GTmod12").is_dir():
        return BenchmarkSet(path, scale, protocol)
    return HRFolderSet(path, scale)


@dataclass
class ValEntry:
    label: str  # "Set5 x4"
    dataset: str  # name used for the protocol's RGB/Y choice
    scale: float
    pairs: object  # BenchmarkSet or HRFolderSet
    count: int


class Validator:
    def __init__(self, data_root: Path, datasets: list[str], scales: list[float], *, protocol: str = "liif",
                 max_images: int | None = None, chunk: int = 30000):
        self.protocol = Protocol(protocol)
        self.chunk = int(chunk)
        self.entries: list[ValEntry] = []
        for name in datasets:
            p = Path(name)
            label = p.name if p.is_absolute() else name
            dataset = p.parent.name if p.name in ("HR", "GTmod12") else p.name  # DIV2K*: scored on RGB
            for s in scales:
                pairs = open_val_set(Path(data_root) / name, float(s), protocol)
                n = len(pairs) if max_images is None else min(int(max_images), len(pairs))
                self.entries.append(ValEntry(f"{label} x{scale_label(s)}", dataset, float(s), pairs, n))

    def __bool__(self) -> bool:
        return bool(self.entries)

    @torch.no_grad()
    def run(self, model, device: torch.device) -> tuple[dict[str, float], float, torch.Tensor | None]:
        """({'Set5 x4': psnr, ...}, mean PSNR, the first output image)."""
        was_training = model.training
        model.eval()
        results: dict[str, float] = {}
        sample = None
        try:
            for entry in self.entries:
                scores = []
                for i in range(entry.count):
                    pair = entry.pairs[i]
                    lr = (pair.lr.to(device, torch.float32) / 255.0).unsqueeze(0)
                    sr = super_resolve(model, lr, tuple(pair.hr.shape[-2:]), entry.scale, self.protocol,
                                       None, self.chunk)[0]
                    sr = self.protocol.finalize(sr)
                    scores.append(self.protocol.score(sr, pair.hr, entry.scale, entry.dataset, ("psnr",))["psnr"])
                    if sample is None:
                        sample = sr.detach().float().cpu()
                results[entry.label] = float(sum(scores) / len(scores))
        finally:
            model.train(was_training)
        mean = float(sum(results.values()) / len(results)) if results else float("nan")
        return results, mean, sample

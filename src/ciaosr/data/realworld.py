"""Training samples for real-world SR (CiaoSR Sec. 5.4, after Real-ESRGAN / BSRGAN).

Two halves, because the degradations run on the training device:

* :class:`RealWorldDataset` (DataLoader workers, CPU): per sample ``k`` a random square
  GT crop of ``gt_size`` pixels from a training image, joint random flips / transpose, a
  scale ``s ~ U[scale_min, scale_max)`` (or one of ``scales``), and a 63-bit seed for
  everything random that follows. All of it depends on ``(seed, k)`` alone, as in
  :mod:`ciaosr.data.train_dataset`, so the stream is the same with any number of
  workers or processes and after a resume.
* :class:`RealWorldBatcher` (training device), per sample: the GT unsharp-masked
  (``sharpen``; the LR is degraded from the sharpened GT, and the sharpened GT is the
  target of the L1 and perceptual losses, as released), the degradation to
  ``round(gt_size / s)`` pixels (8-bit), a random ``lr_patch`` crop of it, and queries at
  the GT pixels whose centres lie inside that crop (``geometry.window_pixels``), with
  exact coordinates and cells in the crop's frame (``geometry.tile_queries``): either
  ``num_queries`` scattered ones (the L1-only stage, as released) or a contiguous
  ``window x window`` block (for the perceptual and GAN losses, which see images). The
  released code takes 4096 consecutive raster indices of the GT crop instead, which
  for s > 1 are no image; the contiguous window is what ``../shared/docs/
  real-world-recipe.md`` proposes in its place.

The degradation and the sharpening are passed in (:class:`RealWorldOps`), so this
module does not depend on how they are made; :func:`default_ops` names the project's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ..errors import CiaosrError
from ..geometry import pixel_queries, tile_queries, window_pixels
from .train_dataset import ImageStream, ScaleRange, random_flips

_TAG_REAL = 0x2EA1_D0
_TAG_CROP = 0xC209

# degrade(hr (1, 3, H, W) in [0, 1], scales (1,), generator) -> [(3, round(H/s), round(W/s))]
DegradeFn = Callable[[torch.Tensor, torch.Tensor, torch.Generator], list]


@dataclass(frozen=True)
class RealWorldOps:
    """The two image operations the real-world batches need."""

    degrade: DegradeFn
    sharpen: Callable[[torch.Tensor], torch.Tensor]  # (B, 3, H, W) -> the same, unsharp-masked


def default_ops(pipeline: str = "realesrgan", settings: dict | None = None) -> RealWorldOps:
    """The project's degradations (``ciaosr.data.degradations``, ``pipeline`` with the
    config's ``data.degradation_args``) and the released unsharp masking of the GT
    (weight 0.5, radius 50, i.e. a 51-pixel kernel, threshold 10)."""
    try:
        from . import degradations as deg
    except ImportError as exc:
        raise CiaosrError(f"the real-world degradations (ciaosr.data.degradations) cannot be imported: {exc}") from None
    try:
        config = deg.DegradationSettings.from_config(settings or None, pipeline=pipeline)
    except (TypeError, ValueError, KeyError) as exc:
        raise CiaosrError(f"data.degradation_args: {exc}") from None
    return RealWorldOps(degrade=lambda hr, scales, generator: deg.degrade(hr, scales, config, generator),
                        sharpen=lambda hr: deg.usm_sharpen(hr, weight=0.5, radius=50, threshold=10))


class RealWorldDataset(ImageStream):
    """``dataset[k]``: ``gt`` (3, G, G) float in [0, 1], ``scale`` (), ``seed`` () int64,
    ``index`` () (see the module's docstring)."""

    def __init__(self, folders: Sequence[str | Path], *, seed: int = 0, gt_size: int = 256,
                 scale_min: float = 1.0, scale_max: float = 4.0, scales: Sequence[float] | None = None,
                 augment: bool = True, cache: bool = False, warn: Callable[[str], None] | None = None):
        if int(gt_size) < 1:
            raise CiaosrError(f"gt_size must be positive, got {gt_size}")
        self.gt_size = int(gt_size)
        self.augment = bool(augment)
        self.scale_range = ScaleRange(scale_min, scale_max, scales)
        super().__init__(folders, seed=seed, min_side=self.gt_size, min_side_is="data.gt_size", warn=warn,
                         cache=cache)

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        k = int(k)
        rng, img = self._sample_start(k, _TAG_REAL)
        s = self.scale_range.draw(rng)
        c = self.gt_size
        h, w = img.shape[-2:]
        y0 = int(rng.integers(0, h - c + 1))
        x0 = int(rng.integers(0, w - c + 1))
        gt = img[:, y0:y0 + c, x0:x0 + c].to(torch.float32) / 255.0
        if self.augment:
            (gt,) = random_flips(rng, gt)
        return {
            "gt": gt.contiguous(),
            "scale": torch.tensor(s, dtype=torch.float32),
            "seed": torch.tensor(int(rng.integers(0, 2 ** 63 - 1)), dtype=torch.int64),
            "index": torch.tensor(k, dtype=torch.int64),
        }


@dataclass
class RealWorldBatch:
    """One batch on the training device. ``target``: the (sharpened) GT at the queries,
    the L1 / perceptual target; ``real``: the plain GT there, the discriminator's real
    sample; both (B, Q, 3) RGB in [0, 1]. ``window``: the side of the query block when
    the queries form one (Q = window^2, row-major), else None."""

    lr: torch.Tensor  # (B, 3, P, P)
    coord: torch.Tensor  # (B, Q, 2)
    cell: torch.Tensor  # (B, Q, 2)
    target: torch.Tensor
    real: torch.Tensor
    window: int | None

    def images(self, queries: torch.Tensor) -> torch.Tensor:
        """(B, Q, C) query values of a window batch -> (B, C, window, window) images."""
        b, _, c = queries.shape
        return queries.view(b, self.window, self.window, c).permute(0, 3, 1, 2)


def _generator(seed: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _no_autotuning():
    """cuDNN's autotuner off (the trainer turns it on for the model, whose shapes are
    fixed): the degradations convolve images of ever new sizes and kernels, and each new
    shape would be timed anew."""
    b = torch.backends.cudnn
    return b.flags(enabled=b.enabled, benchmark=False, deterministic=b.deterministic, allow_tf32=b.allow_tf32)


class RealWorldBatcher:
    """Turns a batch of :class:`RealWorldDataset` samples into model inputs and targets.

    ``per_sample``: degrade each sample alone with a generator of its own seed, so that
    sample ``k`` is the same whatever the batch it falls in (any number of processes);
    else the whole batch in one call with the generator of its first sample's seed
    (faster, most of all on a GPU, where one call per sample is bound by kernel
    launches; still the same after a resume and with any number of DataLoader workers,
    but other degradations under another number of processes or batch size)."""

    def __init__(self, ops: RealWorldOps, *, lr_patch: int, num_queries: int | None = None,
                 window: int | None = None, sharpen: bool = True, per_sample: bool = True):
        if (num_queries is None) == (window is None):
            raise ValueError("give num_queries (scattered queries) or window (a block of queries)")
        if window is not None and not 1 <= window <= lr_patch:
            raise ValueError(f"the query window ({window}) must be at most the LR patch ({lr_patch})")
        if num_queries is not None and not 1 <= num_queries <= lr_patch * lr_patch:
            raise ValueError(f"num_queries must be in 1..{lr_patch * lr_patch}, got {num_queries}")
        self.ops, self.lr_patch = ops, int(lr_patch)
        self.num_queries, self.window, self.sharpen = num_queries, window, bool(sharpen)
        self.per_sample = bool(per_sample)

    def __call__(self, batch: dict, device: torch.device) -> RealWorldBatch:
        gt = batch["gt"].to(device, non_blocking=True)
        sharp = self.ops.sharpen(gt) if self.sharpen else gt
        seeds = [int(x) for x in batch["seed"]]
        scales = batch["scale"].to(device)
        with _no_autotuning():
            if self.per_sample:  # each sample's degradation from its own seed
                lqs = [self.ops.degrade(sharp[i:i + 1], scales[i:i + 1], _generator(seeds[i], device))[0]
                       for i in range(len(seeds))]
            else:  # the batch's in one call, from its first sample's seed
                lqs = self.ops.degrade(sharp, scales, _generator(seeds[0], device))
        lrs, coords, cells, targets, reals = [], [], [], [], []
        for i, (seed, lq) in enumerate(zip(seeds, lqs)):
            lr, coord, cell, rows, cols = self._crop(lq, gt.shape[-2:], np.random.default_rng([seed, _TAG_CROP]))
            lrs.append(lr)
            coords.append(coord)
            cells.append(cell)
            targets.append(sharp[i][:, rows, cols].t())
            reals.append(gt[i][:, rows, cols].t())
        return RealWorldBatch(torch.stack(lrs), torch.stack(coords), torch.stack(cells), torch.stack(targets),
                              torch.stack(reals), self.window)

    def _crop(self, lq: torch.Tensor, gt_hw, rng: np.random.Generator):
        """The LR patch, its queries' coordinates and cells, and the (rows, cols) indices
        of the queried GT pixels."""
        p = self.lr_patch
        (h, w), (H, W) = lq.shape[-2:], tuple(gt_hw)
        if h < p or w < p:
            raise CiaosrError(f"a degraded LR of {w}x{h} is smaller than data.lr_patch ({p}): "
                              f"raise data.gt_size or lower data.scale_max")
        top, left = int(rng.integers(0, h - p + 1)), int(rng.integers(0, w - p + 1))
        box = (top, top + p, left, left + p)
        r0, r1 = window_pixels(h, H, top, top + p)
        c0, c1 = window_pixels(w, W, left, left + p)
        dev = lq.device
        if self.window is not None:
            n = self.window
            y, x = r0 + int(rng.integers(0, r1 - r0 - n + 1)), c0 + int(rng.integers(0, c1 - c0 - n + 1))
            rows_np, cols_np = np.arange(y, y + n), np.arange(x, x + n)
            coord, cell = tile_queries((h, w), (H, W), box, rows_np, cols_np, dev)
            rows = torch.arange(y, y + n, device=dev).repeat_interleave(n)
            cols = torch.arange(x, x + n, device=dev).repeat(n)
        else:
            nr, nc = r1 - r0, c1 - c0
            pick = rng.choice(nr * nc, size=self.num_queries, replace=False)
            rows_np, cols_np = r0 + pick // nc, c0 + pick % nc
            coord, cell = pixel_queries((h, w), (H, W), box, rows_np, cols_np, dev)
            rows, cols = torch.from_numpy(rows_np).to(dev), torch.from_numpy(cols_np).to(dev)
        return lq[:, top:top + p, left:left + p], coord, cell, rows, cols

"""Training samples for arbitrary-scale SR, as LIIF / CiaoSR make them.

Per sample (the paper's recipe):

* a scale ``s`` drawn from U[scale_min, scale_max) or from a discrete set;
* a random square HR crop of ``round(lr_patch * s)`` pixels;
* the LR: PIL-style antialiased bicubic downscale of the uint8 crop to
  ``lr_patch x lr_patch``, rounded back to 8 bits;
* joint random horizontal flip, vertical flip and transpose (p = 0.5 each);
* ``num_queries`` HR pixels drawn without replacement: their (row, col) coordinates,
  cells ``(2/crop_h, 2/crop_w)`` and RGB values.

The dataset is an endless stream indexed by a global sample number ``k``: everything
about sample ``k`` (which image, scale, crop, flips, queries) comes from ``(seed, k)``
alone, so the stream is the same with any number of DataLoader workers, any number of
processes, and after a resume. Images are visited in a fresh random order every pass
(pass ``e`` covers samples ``e*n .. e*n + n - 1`` for ``n`` usable images).
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Sampler

from ..geometry import make_cell, make_coord, scaled_size
from ..errors import CiaosrError
from ..imageio import image_size, list_images
from .benchmark import load_rgb

# Stream tags mixed into the seed so the different random choices are independent.
_TAG_ORDER = 0x0A11CE
_TAG_SAMPLE = 0x5A3B1E


def find_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder`` (sorted); CiaosrError if it has none."""
    folder = Path(folder)
    if not folder.exists():
        raise CiaosrError(f"training folder not found: {folder}")
    if not folder.is_dir():
        raise CiaosrError(f"training data path is not a folder: {folder}")
    files = list_images(folder)
    if not files:
        raise CiaosrError(f"no images (PNG/JPEG/...) in training folder {folder}")
    return files


def downscale_bicubic_u8(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """PIL-style antialiased bicubic resize of a uint8-valued (3, H, W) tensor.

    Returns float32 holding integers in [0, 255] (rounded, as an 8-bit image would be).
    """
    x = img.to(torch.float32).unsqueeze(0)
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False)
    return x.round_().clamp_(0, 255)[0]


class ImageStream(Dataset):
    """An endless stream of samples cut from folders of training images: sample ``k``
    comes from image ``image_index(k)``; images are visited in a fresh random order
    every pass. Images whose shorter side is below ``min_side`` are skipped (warned;
    ``min_side_is`` says what that size is, for the error when none is left).

    ``len(stream)`` is the number of usable images (one pass); subclasses define
    ``__getitem__``.
    """

    def __init__(self, folders: Sequence[str | Path], *, seed: int, min_side: int, min_side_is: str,
                 warn: Callable[[str], None] | None = None, cache: bool = False):
        if isinstance(folders, (str, Path)):
            folders = [folders]
        if not folders:
            raise CiaosrError("no training folders given")
        if int(seed) < 0:
            raise CiaosrError(f"seed must be >= 0, got {seed}")
        self.seed = int(seed)
        files: list[Path] = []
        for folder in folders:
            files.extend(find_images(folder))
        self.files: list[Path] = []
        small: list[str] = []
        for path in files:
            h, w = image_size(path)
            if min(h, w) < min_side:
                small.append(f"{path.name} ({w}x{h})")
            else:
                self.files.append(path)
        self.skipped = small
        if small:
            msg = (f"skipping {len(small)} of {len(files)} training images smaller than the largest crop "
                   f"({min_side}x{min_side}): {', '.join(small[:5])}{' ...' if len(small) > 5 else ''}")
            (warn or (lambda m: warnings.warn(m, UserWarning, stacklevel=4)))(msg)
        if not self.files:
            raise CiaosrError(f"no training image is at least {min_side}x{min_side} pixels "
                              f"({min_side_is}); all {len(files)} skipped")
        self._cache: list[torch.Tensor] | None = None
        if cache:
            self.enable_cache()

    def enable_cache(self) -> None:
        """Decode every image now and keep it in memory (DataLoader workers started
        afterwards share these tensors)."""
        if self._cache is None:
            self._cache = [load_rgb(p) for p in self.files]

    def __len__(self) -> int:
        return len(self.files)

    def _order(self, epoch: int) -> np.ndarray:
        return _permutation(self.seed, epoch, len(self.files))

    def image_index(self, k: int) -> int:
        n = len(self.files)
        return int(self._order(k // n)[k % n])

    def _image(self, i: int) -> torch.Tensor:
        return self._cache[i] if self._cache is not None else load_rgb(self.files[i])

    def _sample_start(self, k: int, tag: int) -> tuple[np.random.Generator, torch.Tensor]:
        """Sample ``k``'s random generator (from ``(seed, tag, k)``) and image."""
        if int(k) < 0:
            raise IndexError(f"sample index must be >= 0, got {k}")
        return np.random.default_rng([self.seed, tag, int(k)]), self._image(self.image_index(int(k)))


class ScaleRange:
    """Training scales: U[lo, hi) or one of a discrete set, checked once."""

    def __init__(self, scale_min: float = 1.0, scale_max: float = 4.0, scales: Sequence[float] | None = None):
        if scales:
            self.scales = tuple(float(s) for s in scales)
            if any(not math.isfinite(s) or s < 1 for s in self.scales):
                raise CiaosrError(f"training scales must be >= 1, got {list(self.scales)}")
            lo, hi = min(self.scales), max(self.scales)
        else:
            self.scales = None
            lo, hi = float(scale_min), float(scale_max)
            if not (math.isfinite(lo) and math.isfinite(hi)) or lo < 1 or hi < lo:
                raise CiaosrError(f"need 1 <= scale_min <= scale_max, got [{lo:g}, {hi:g})")
        self.lo, self.hi = lo, hi

    def draw(self, rng: np.random.Generator) -> float:
        if self.scales is not None:
            return float(self.scales[int(rng.integers(len(self.scales)))])
        return float(rng.uniform(self.lo, self.hi))


def random_flips(rng: np.random.Generator, *images: torch.Tensor) -> list[torch.Tensor]:
    """The same random horizontal flip, vertical flip and transpose (p = 0.5 each) of
    every (..., H, W) image."""
    hflip, vflip, transpose = (rng.random(3) < 0.5).tolist()
    out = list(images)
    if hflip:
        out = [x.flip(-1) for x in out]
    if vflip:
        out = [x.flip(-2) for x in out]
    if transpose:
        out = [x.transpose(-2, -1) for x in out]
    return out


class SRTrainDataset(ImageStream):
    """An endless stream of training samples from folders of HR images.

    ``dataset[k]`` is the ``k``-th sample (any ``k >= 0``); ``len(dataset)`` is the number
    of usable images (one pass). Each sample is a dict of tensors:

    ``lr`` (3, P, P) float in [0, 1]; ``coord`` (Q, 2) and ``cell`` (Q, 2) of the queries;
    ``gt`` (Q, 3) RGB in [0, 1]; ``scale`` (); ``index`` () the sample number.
    """

    def __init__(
        self,
        folders: Sequence[str | Path],
        *,
        seed: int = 0,
        scale_min: float = 1.0,
        scale_max: float = 4.0,
        scales: Sequence[float] | None = None,
        lr_patch: int = 48,
        num_queries: int | None = 48 * 48,
        augment: bool = True,
        cache: bool = False,
        warn: Callable[[str], None] | None = None,
    ):
        if int(lr_patch) < 1:
            raise CiaosrError(f"lr_patch must be positive, got {lr_patch}")
        self.lr_patch = int(lr_patch)
        self.augment = bool(augment)
        self.scale_range = ScaleRange(scale_min, scale_max, scales)
        lo, hi = self.scale_range.lo, self.scale_range.hi
        self.scale_min, self.scale_max = lo, hi
        self.min_crop = scaled_size((self.lr_patch, self.lr_patch), lo)[0]
        self.max_crop = scaled_size((self.lr_patch, self.lr_patch), hi)[0]
        smallest_q = self.min_crop * self.min_crop
        self.num_queries = smallest_q if num_queries is None else int(num_queries)
        if self.num_queries < 1 or self.num_queries > smallest_q:
            raise CiaosrError(
                f"num_queries must be in 1..{smallest_q} (the pixels of the smallest HR crop, "
                f"{self.min_crop}x{self.min_crop}), got {self.num_queries}")
        super().__init__(folders, seed=seed, min_side=self.max_crop, warn=warn, cache=cache,
                         min_side_is=f"the largest HR crop at scale {hi:g}")

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        k = int(k)
        rng, img = self._sample_start(k, _TAG_SAMPLE)
        s = self.scale_range.draw(rng)
        c = scaled_size((self.lr_patch, self.lr_patch), s)[0]
        h, w = img.shape[-2:]
        y0 = int(rng.integers(0, h - c + 1))
        x0 = int(rng.integers(0, w - c + 1))
        hr = img[:, y0:y0 + c, x0:x0 + c]
        lr = downscale_bicubic_u8(hr, (self.lr_patch, self.lr_patch))
        hr = hr.to(torch.float32)
        if self.augment:
            hr, lr = random_flips(rng, hr, lr)
        hh, ww = hr.shape[-2:]
        idx = torch.from_numpy(rng.choice(hh * ww, size=self.num_queries, replace=False).astype(np.int64))
        coord = make_coord((hh, ww))[idx]
        gt = hr.reshape(3, -1)[:, idx].t().contiguous() / 255.0
        cell = make_cell((hh, ww), self.num_queries)
        return {
            "lr": (lr / 255.0).contiguous(),
            "coord": coord,
            "cell": cell,
            "gt": gt,
            "scale": torch.tensor(s, dtype=torch.float32),
            "index": torch.tensor(k, dtype=torch.int64),
        }


@lru_cache(maxsize=4)
def _permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng([seed, _TAG_ORDER, epoch]).permutation(n)


class StreamSampler(Sampler[int]):
    """Sample numbers for one process: step ``t`` of the run uses the global batch
    ``start + t*B*W .. start + (t+1)*B*W - 1``; rank ``r`` takes its ``B`` contiguous ones.

    ``start`` is the number of samples the run has already consumed (the resume point).
    With a fixed world size this is DistributedSampler-style sharding of one stream.
    """

    def __init__(self, start: int, steps: int, batch_size: int, rank: int = 0, world_size: int = 1):
        self.start, self.steps = int(start), int(steps)
        self.batch_size, self.rank, self.world_size = int(batch_size), int(rank), int(world_size)

    def __len__(self) -> int:
        return self.steps * self.batch_size

    def __iter__(self):
        global_batch = self.batch_size * self.world_size
        for t in range(self.steps):
            base = self.start + t * global_batch + self.rank * self.batch_size
            yield from range(base, base + self.batch_size)

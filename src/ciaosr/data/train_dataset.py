"""Training samples for arbitrary-scale SR, as the official LIIF and CiaoSR code make them.

Per sample (the paper's recipe):

* a scale ``s`` drawn from U[scale_min, scale_max) or from a discrete set;
* a random square HR crop of ``round(lr_patch * s)`` pixels;
* the LR: PIL's bicubic downscale (``Image.resize(..., BICUBIC)``, antialiased, in PIL's
  fixed-point arithmetic) of the uint8 crop to ``lr_patch x lr_patch``, as both official
  pipelines make it;
* joint random flips of either axis and a transpose (p = 0.5 each);
* ``num_queries`` HR pixels drawn without replacement: their (row, col) coordinates,
  cells ``(2/crop_h, 2/crop_w)`` and RGB values; with ``target_upscale`` t > 1 (OPE-SR's
  official sampler, ``t = 3``), pixels of the augmented HR crop enlarged t times by PIL's
  bicubic (its ``resize_fn``), on that ``t * crop`` grid.

Two recipes (``data.recipe``), each its family's official code:

* ``liif``: LIIF's ``image-folder`` + ``sr-implicit-downsampled`` (LIIF, LTE, MetaSR,
  ITSRN). The crop's corner is drawn from ``0 .. H - crop`` inclusive (``random.randint``).
  Its ``ToPILImage`` turns the float image back into bytes by truncation, which loses
  nothing on 8-bit values (``k / 255 * 255`` is exactly ``k`` in float32 for all 256).
* ``mmedit``: mmediting 0.11's ``RandomDownSampling`` + ``Flip`` + ``RandomTransposeHW``
  + ``GenerateCoordinateAndCell`` (the official CiaoSR configs). The corner is drawn
  from ``0 .. H - crop - 1`` (``np.random.randint`` excludes its end), so an image must
  be one pixel larger than the crop.

Every random choice of a sample is a :class:`SampleDraws`; :func:`make_sample` turns an
image and its draws into the sample, so the tests give it the official pipelines' draws
and compare the result with theirs.

The dataset is an endless stream indexed by a global sample number ``k``: everything
about sample ``k`` (which image, scale, crop, flips, queries) comes from ``(seed, k)``
alone, so the stream is the same with any number of DataLoader workers, any number of
processes, and after a resume. Images are visited in a fresh random order every pass
(pass ``e`` covers samples ``e*n .. e*n + n - 1`` for ``n`` usable images).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..geometry import make_cell, make_coord, scaled_size
from ..errors import CiaosrError
from ..imageio import image_size, list_images
from .benchmark import load_rgb, pil_downscale

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


#: The training-sample recipes (module docstring), each its family's official code.
RECIPES = ("liif", "mmedit")


def recipe_for_decoder(decoder: str) -> str:
    """The recipe of a decoder family's official training code: mmediting's for CiaoSR,
    LIIF's for the others (LTE, MetaSR and ITSRN train with LIIF's code)."""
    return "mmedit" if decoder == "ciaosr" else "liif"


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


def apply_flips(images, flip_rows: bool, flip_cols: bool, transpose: bool) -> list[torch.Tensor]:
    """Reverse the row axis, the column axis, then transpose, each if asked, of every
    (..., H, W) image (flips commute; the transpose comes last, as in both official
    pipelines)."""
    out = list(images)
    if flip_rows:
        out = [x.flip(-2) for x in out]
    if flip_cols:
        out = [x.flip(-1) for x in out]
    if transpose:
        out = [x.transpose(-2, -1) for x in out]
    return out


def random_flips(rng: np.random.Generator, *images: torch.Tensor) -> list[torch.Tensor]:
    """The same random horizontal flip, vertical flip and transpose (p = 0.5 each) of
    every (..., H, W) image."""
    flip_cols, flip_rows, transpose = (rng.random(3) < 0.5).tolist()
    return apply_flips(images, flip_rows, flip_cols, transpose)


@dataclass(frozen=True)
class SampleDraws:
    """Every random choice of one training sample: the scale, the crop's top-left corner,
    the flips (``flip_rows`` reverses the row axis, ``flip_cols`` the column axis; then
    ``transpose``), and the query pixels (row-major indices into the augmented crop)."""

    scale: float
    top: int
    left: int
    flip_rows: bool
    flip_cols: bool
    transpose: bool
    queries: np.ndarray


def make_sample(img: torch.Tensor, draws: SampleDraws, lr_patch: int, target_upscale: int = 1) -> dict[str, torch.Tensor]:
    """The training sample that ``draws`` cut from a uint8 (3, H, W) image: ``lr`` (3, P, P)
    and ``gt`` (Q, 3) in [0, 1] (bytes / 255 in float32, as ``ToTensor`` and
    ``RescaleToZeroOne`` make them), ``coord`` and ``cell`` (Q, 2); the targets from the
    augmented crop enlarged ``target_upscale`` times (PIL bicubic) when above 1."""
    c = scaled_size((lr_patch, lr_patch), draws.scale)[0]
    hr = img[:, draws.top:draws.top + c, draws.left:draws.left + c]
    if hr.shape[-2:] != (c, c):
        raise ValueError(f"crop {c}x{c} at ({draws.top}, {draws.left}) leaves the {tuple(img.shape[-2:])} image")
    lr = pil_downscale(hr, (lr_patch, lr_patch))
    hr, lr = apply_flips((hr, lr), draws.flip_rows, draws.flip_cols, draws.transpose)
    if target_upscale != 1:
        hr = pil_downscale(hr, (hr.shape[-2] * target_upscale, hr.shape[-1] * target_upscale))  # PIL bicubic, up
    idx = torch.from_numpy(np.asarray(draws.queries, dtype=np.int64))
    hh, ww = hr.shape[-2:]
    gt = hr.reshape(3, -1)[:, idx].t().to(torch.float32) / 255.0
    return {
        "lr": lr.to(torch.float32).div_(255.0).contiguous(),
        "coord": make_coord((hh, ww))[idx],
        "cell": make_cell((hh, ww), len(idx)),
        "gt": gt.contiguous(),
    }


class SRTrainDataset(ImageStream):
    """An endless stream of training samples from folders of HR images, made by
    ``recipe`` (``liif`` or ``mmedit``, the module docstring).

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
        recipe: str = "liif",
        cache: bool = False,
        warn: Callable[[str], None] | None = None,
        target_upscale: int = 1,
    ):
        if int(lr_patch) < 1:
            raise CiaosrError(f"lr_patch must be positive, got {lr_patch}")
        if isinstance(target_upscale, bool) or not isinstance(target_upscale, int) or target_upscale < 1:
            raise CiaosrError(f"target_upscale must be a whole number >= 1, got {target_upscale!r}")
        self.target_upscale = target_upscale
        if recipe not in RECIPES:
            raise CiaosrError(f"unknown training recipe {recipe!r}: use one of {', '.join(RECIPES)}")
        self.recipe = recipe
        self.lr_patch = int(lr_patch)
        self.augment = bool(augment)
        self.scale_range = ScaleRange(scale_min, scale_max, scales)
        lo, hi = self.scale_range.lo, self.scale_range.hi
        self.scale_min, self.scale_max = lo, hi
        self.min_crop = scaled_size((self.lr_patch, self.lr_patch), lo)[0]
        self.max_crop = scaled_size((self.lr_patch, self.lr_patch), hi)[0]
        smallest_q = (self.min_crop * target_upscale) ** 2
        self.num_queries = smallest_q if num_queries is None else int(num_queries)
        if self.num_queries < 1 or self.num_queries > smallest_q:
            raise CiaosrError(
                f"num_queries must be in 1..{smallest_q} (the pixels of the smallest target grid, "
                f"{self.min_crop * target_upscale}x{self.min_crop * target_upscale}), got {self.num_queries}")
        # mmediting draws the corner below H - crop (exclusive): one spare pixel is needed.
        self._corner_span = 1 if recipe == "liif" else 0
        min_side = self.max_crop + 1 - self._corner_span
        super().__init__(folders, seed=seed, min_side=min_side, warn=warn, cache=cache,
                         min_side_is=f"the largest HR crop at scale {hi:g}"
                                     + (", plus the pixel the mmedit recipe needs" if self._corner_span == 0 else ""))

    def draw(self, rng: np.random.Generator, hw: tuple[int, int]) -> SampleDraws:
        """The random choices of one sample from an image of size ``hw``, in the order
        the recipe's official code makes them (scale, corner row, corner column, the
        three flips, the queries)."""
        s = self.scale_range.draw(rng)
        c = scaled_size((self.lr_patch, self.lr_patch), s)[0]
        h, w = hw
        top = int(rng.integers(0, h - c + self._corner_span))
        left = int(rng.integers(0, w - c + self._corner_span))
        first, second, transpose = (rng.random(3) < 0.5).tolist() if self.augment else (False, False, False)
        # LIIF's "hflip" reverses rows (dim -2), mmediting's "horizontal" Flip columns.
        flip_rows, flip_cols = (first, second) if self.recipe == "liif" else (second, first)
        t = c * self.target_upscale
        queries = rng.choice(t * t, size=self.num_queries, replace=False).astype(np.int64)
        return SampleDraws(s, top, left, flip_rows, flip_cols, transpose, queries)

    def image_and_draws(self, k: int) -> tuple[torch.Tensor, SampleDraws]:
        """Sample ``k``'s image (uint8) and random choices."""
        rng, img = self._sample_start(int(k), _TAG_SAMPLE)
        return img, self.draw(rng, tuple(img.shape[-2:]))

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        k = int(k)
        img, draws = self.image_and_draws(k)
        sample = make_sample(img, draws, self.lr_patch, self.target_upscale)
        sample["scale"] = torch.tensor(draws.scale, dtype=torch.float32)
        sample["index"] = torch.tensor(k, dtype=torch.int64)
        return sample


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

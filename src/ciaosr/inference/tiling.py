"""Memory-bounded super-resolution of large images: overlapping LR tiles, blended.

The LR image is cut into a grid of equal, overlapping tiles. Each tile is encoded on
its own (``model.encode``: the encoder trunk, and for CiaoSR the non-local attention,
whose memory grows with the square of the tile area), then the output pixels that
belong to the tile are decoded in chunks of queries.

Coordinates (``geometry.tile_queries``). An output pixel centre at ``u`` LR pixels from the top (``u = (i + 0.5) *
H / h``) lies at ``-1 + 2 (u - y0) / t`` in the frame of a tile that starts at ``y0``
and is ``t`` LR pixels tall. The cell is the global output cell ``2 / h`` measured in
tile units: ``2 / h * H / t``. In LR pixels (what the decoders feed their MLPs,
``cell * tile size``) it is therefore exactly the untiled ``2 H / h``: every tile sees
the scale the whole image is upscaled by.

Layout and blending. Along each axis the tiles are as few as the tile size allows and
only as long as needed to overlap by the nominal overlap (``tile_spans``). A tile's
weight is 1 in its interior and, across each overlap with a neighbour, a linear ramp
of half the overlap's width centred on the overlap's middle, complementary to the
neighbour's: no weight over the outer quarter of the overlap, where the tile lacks
context, and every output pixel outside the ramps is decoded by one tile only. Since the tiles form a grid, the sum of weights is
the product of a per-row and a per-column sum, so no full-size weight map is kept.
Outputs whose weight is 0 are never decoded. An image that fits in one tile is
upsampled whole, exactly as ``model.upsample`` does.

Every model's tiles differ a little from the whole image near the seams (a tile's encoder
lacks the context beyond it). A decoder whose tiles differ everywhere (``tiles_differ``:
SRNO, whose attention spans every query decoded together) is still tiled when the image
needs it, with one warning line on stderr, once per process and decoder: a tile at least
as large as the image decodes it whole.

Tile size. Unless given, the largest tile (a multiple of 16, at least 32) whose
estimated encode memory fits three quarters of a budget: half the available memory
(``MemAvailable`` from /proc/meminfo, or free GPU memory), clamped to [256 MiB, 2 GiB].
Capped at the decoder's ``max_tile`` (CiaoSR: 192, the official test tile, since its
non-local attention searches the whole tile) or else at 640: wider tiles mean fewer
overlaps encoded twice and fewer ramps decoded twice (a 1024-pixel side takes two tiles
instead of three), while memory grows with the tile's area. The query chunk is
sized from the remaining quarter, at most 30000 (the official chunk).
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..errors import CiaosrError
from ..geometry import tile_queries
from ..models.memory import encode_bytes, query_bytes
from ..runtime import recheck_threads

DEFAULT_CHUNK = 30000
MIN_TILE = 8
MIN_AUTO_TILE = 32
MAX_AUTO_TILE = 640  # or the decoder's max_tile (CiaoSR: 192, the official test tile)
MIB = 1 << 20


@dataclass(frozen=True)
class TilePlan:
    tile: int  # LR pixels, square
    overlap: int  # LR pixels between neighbouring tiles, at least
    chunk: int  # queries decoded at once


@dataclass(frozen=True)
class Progress:
    """Where a :func:`tiled_upsample` stands: ``tiles_done`` of ``tiles_total`` tiles, and
    the ``fraction`` of the work done, the decoded chunks of the tile under way counted
    (an image that fits one tile is one tile of many chunks)."""

    tiles_done: int
    tiles_total: int
    fraction: float


#: Called with a :class:`Progress` before the first tile and after every decoded chunk
#: and tile; an exception it raises stops the upsample there (how a caller cancels).
ProgressCallback = Callable[[Progress], None]


def check_tile(tile: int | None, largest: int | None = None) -> int | None:
    """A tile size a person gave (None: automatic), or a one-line ``CiaosrError``:
    at least ``MIN_TILE`` LR pixels, and at most ``largest`` when a limit is set."""
    if tile is None:
        return None
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < MIN_TILE:
        raise CiaosrError(f"--tile must be a whole number of at least {MIN_TILE} LR pixels, got {tile}")
    if largest is not None and tile > largest:
        raise CiaosrError(f"--tile must be at most {largest} LR pixels here, got {tile}")
    return tile


# --------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------
def available_memory(device: torch.device | str = "cpu") -> int:
    """Bytes that can be allocated now: free GPU memory, or the OS's MemAvailable."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4 << 30  # unknown platform: assume a modest machine


def memory_budget(device: torch.device | str = "cpu") -> int:
    device = torch.device(device)
    avail = available_memory(device)
    if device.type == "cuda":
        return max(int(avail * 0.6), 256 * MIB)
    return min(max(avail // 2, 256 * MIB), 2048 * MIB)


def auto_tile(model: nn.Module, device: torch.device | str = "cpu", budget: int | None = None) -> int:
    budget = memory_budget(device) if budget is None else budget
    cap = min(MAX_AUTO_TILE, model.decoder.max_tile or MAX_AUTO_TILE)
    best = MIN_AUTO_TILE
    for t in range(MIN_AUTO_TILE, cap + 1, 16):
        if encode_bytes(model, t) <= 0.75 * budget:
            best = t
    return best


def auto_chunk(model: nn.Module, device: torch.device | str = "cpu", budget: int | None = None) -> int:
    budget = memory_budget(device) if budget is None else budget
    return int(min(DEFAULT_CHUNK, max(1024, (budget // 4) // query_bytes(model))))


def default_overlap(tile: int) -> int:
    """32 LR pixels (as the official tiling) for big tiles, a quarter of smaller ones."""
    return max(2, min(32, tile // 4))


def plan_tiles(model: nn.Module, device="cpu", tile: int | None = None, overlap: int | None = None,
               chunk: int | None = None) -> TilePlan:
    budget = None
    if tile is None or chunk is None:
        budget = memory_budget(device)
    t = auto_tile(model, device, budget) if tile is None else int(tile)
    if t < MIN_TILE:
        raise ValueError(f"tile must be at least {MIN_TILE} LR pixels, got {t}")
    o = default_overlap(t) if overlap is None else int(overlap)
    if not 0 < o < t // 2 + 1:
        raise ValueError(f"overlap must be in [1, tile/2], got {o} for tile {t}")
    c = auto_chunk(model, device, budget) if chunk is None else int(chunk)
    return TilePlan(t, o, max(1, c))


# --------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------
def tile_spans(n: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """Equal spans ``[start, stop)`` covering [0, n): as few as tiles of ``tile`` allow,
    each only as long as needed for neighbours to overlap by ``overlap`` (not by all the
    slack a full-length tile would leave, which would encode and decode it twice)."""
    if n <= tile:
        return [(0, n)]
    k = math.ceil((n - overlap) / (tile - overlap))
    for length in range(min(tile, math.ceil((n + (k - 1) * overlap) / k)), tile + 1):
        starts = [round(i * (n - length) / (k - 1)) for i in range(k)]
        if all(a + length - b >= overlap for a, b in zip(starts, starts[1:])):
            break
    return [(s, s + length) for s in starts]


def axis_weights(n_lr: int, n_out: int, spans: list[tuple[int, int]], i: int, overlap: int) -> np.ndarray:
    """(n_out,) blending weight of span ``i`` for every output pixel: 1 inside, and across
    each overlap with a neighbour a linear ramp of width ``overlap / 2`` centred on the
    middle of the overlap, where the neighbour's ramp is its complement; so every output
    pixel outside the ramps is decoded by one tile only, and each tile keeps at least a
    quarter overlap of context beyond the pixels it contributes to."""
    u = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_lr / n_out)
    half = overlap / 4.0
    weight = np.ones(n_out)
    if i > 0:
        cut = (spans[i][0] + spans[i - 1][1]) / 2
        weight = np.minimum(weight, np.clip((u - (cut - half)) / (2 * half), 0.0, 1.0))
    if i < len(spans) - 1:
        cut = (spans[i + 1][0] + spans[i][1]) / 2
        weight = np.minimum(weight, np.clip(((cut + half) - u) / (2 * half), 0.0, 1.0))
    return weight


# --------------------------------------------------------------------------------------
# Inference
# --------------------------------------------------------------------------------------
@torch.no_grad()
def tiled_upsample(model, lr: torch.Tensor, size: tuple[int, int], *, tile: int | None = None,
                   overlap: int | None = None, chunk: int | None = None, progress: bool | None = False,
                   plan: TilePlan | None = None, on_progress: ProgressCallback | None = None) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> (B, 3, h, w) fp32 in [0, 1], in tiles of at most ``tile``
    LR pixels (automatic when None). ``progress``: a tqdm bar over tiles (None: only
    on a terminal). ``on_progress``: a :data:`ProgressCallback`."""
    b, _, H, W = lr.shape
    h, w = int(size[0]), int(size[1])
    if plan is None:
        plan = plan_tiles(model, lr.device, tile, overlap, chunk)
    t, o, chunk = plan.tile, plan.overlap, plan.chunk
    rows, cols = tile_spans(H, t, o), tile_spans(W, t, o)
    total = len(rows) * len(cols)

    def report(tiles_done: int, done: int = 0, of: int = 1) -> None:
        if on_progress is not None:
            on_progress(Progress(tiles_done, total, (tiles_done + done / of) / total))

    def report_chunk(tiles_done: int):
        return None if on_progress is None else (lambda done, of: report(tiles_done, done, of))

    report(0)
    if total > 1:
        _warn_tiles_differ(model, total, t, max(H, W))
    if total == 1:
        recheck_threads()
        out = model.upsample(lr, (h, w), chunk=chunk, on_chunk=report_chunk(0)).float()
        report(1)
        return out

    row_w = [axis_weights(H, h, rows, i, o) for i in range(len(rows))]
    col_w = [axis_weights(W, w, cols, i, o) for i in range(len(cols))]
    row_sum = torch.from_numpy(np.sum(row_w, axis=0)).float()
    col_sum = torch.from_numpy(np.sum(col_w, axis=0)).float()

    out = torch.zeros(b, 3, h, w, dtype=torch.float32)
    from tqdm.auto import tqdm

    bar = tqdm(total=total, unit="tile", leave=False, desc="tiles",
               disable=(None if progress is None else not progress))
    done = 0
    try:
        for (r0, r1), wr in zip(rows, row_w):
            ri = np.nonzero(wr > 0)[0]
            for (c0, c1), wc in zip(cols, col_w):
                ci = np.nonzero(wc > 0)[0]
                if len(ri) and len(ci):
                    recheck_threads()  # a long run follows other jobs starting and ending
                    block = _decode_tile(model, lr[:, :, r0:r1, c0:c1], (H, W), (h, w),
                                         (r0, r1, c0, c1), ri, ci, chunk, report_chunk(done))
                    weight = torch.from_numpy(np.outer(wr[ri], wc[ci])).float()
                    out[:, :, ri[0]:ri[-1] + 1, ci[0]:ci[-1] + 1] += block * weight
                done += 1
                bar.update(1)
                report(done)
    finally:
        bar.close()
    out /= row_sum.view(1, 1, h, 1) * col_sum.view(1, 1, 1, w)
    return out.clamp_(0, 1)


_tiles_warned: set = set()


def _warn_tiles_differ(model, tiles: int, tile: int, side: int) -> None:
    """One line on stderr, the first time a decoder whose result depends on the tiling
    (``Decoder.tiles_differ``) is tiled in this process."""
    decoder = getattr(model, "decoder", None)
    reason = getattr(decoder, "tiles_differ", None)
    kind = type(decoder).__name__
    if reason and kind not in _tiles_warned:
        _tiles_warned.add(kind)
        name = (getattr(model, "spec", None) or {}).get("name", kind)
        print(f"warning: {name} upscaled in {tiles} tiles of {tile} LR pixels differs from the whole-image result: "
              f"{reason}; --tile {side} (or more) decodes this image whole, memory permitting",
              file=sys.stderr, flush=True)


def _decode_tile(model, lr_tile: torch.Tensor, lr_size, out_size, box, ri: np.ndarray, ci: np.ndarray,
                 chunk: int, on_chunk=None) -> torch.Tensor:
    """(B, 3, len(ri), len(ci)) unclamped RGB of output rows ``ri`` x cols ``ci``
    (both contiguous ranges), from one encoded tile."""
    b = lr_tile.shape[0]
    enc = model.encode(lr_tile)
    coord, cell = tile_queries(lr_size, out_size, box, ri, ci, lr_tile.device)
    res = model.to_image(model.decode_chunked(enc, coord.expand(b, -1, -1), cell.expand(b, -1, -1), chunk,
                                              on_chunk))
    res = res.float().cpu()
    del enc
    return res.view(b, len(ri), len(ci), 3).permute(0, 3, 1, 2)


__all__ = ["TilePlan", "Progress", "ProgressCallback", "check_tile", "tiled_upsample", "plan_tiles", "auto_tile",
           "auto_chunk", "available_memory", "memory_budget", "tile_spans", "axis_weights", "default_overlap",
           "DEFAULT_CHUNK"]

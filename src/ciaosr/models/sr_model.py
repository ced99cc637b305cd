"""The one model interface shared by every decoder: encode once, decode any queries.

``encode`` does all per-LR-pixel work (the encoder trunk, and the decoder's
``prepare``: unfolding, non-local attention, per-pixel halves of first MLP layers).
``decode`` does only per-query work, so decoding a large output in chunks never
recomputes anything that does not depend on the query.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..geometry import make_cell, make_coord
from ..runtime import chunk_workers, side_by_side
from ..decoders.base import Decoder


@dataclass
class EncodedImage:
    """Everything ``decode`` needs about one LR batch."""

    lr_norm: torch.Tensor  # (B, 3, H, W) normalised input
    feat: torch.Tensor  # (B, C, H, W) encoder output
    prepared: Any = None  # the decoder's per-image prepared object (see decoders.base)


class ChunkedDecoding:
    """Whole-image decoding in chunks of queries, for any model with ``encode``, ``plan``,
    ``decode`` and ``to_image`` and a ``decoder`` holding the chunk hints (``max_chunk``,
    ``cpu_chunk``, ``side_by_side``): :class:`ImplicitSRModel` and the ONNX Runtime
    backend (``ciaosr.onnx.runtime``), so both decode and tile (``inference.tiling``) one way.
    """

    def decode_chunked(self, enc: EncodedImage, coord, cell, chunk: int = 30000,
                       on_chunk: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """Decode in chunks of at most ``chunk`` queries (or the decoder's own, smaller
        ``max_chunk``, a memory bound; and on the CPU its ``cpu_chunk`` when it has one, the
        size measured fastest there). ``on_chunk(done, total)``
        is called after each chunk with the queries decoded so far; an exception it raises
        stops the decoding (how a caller cancels).

        Each chunk's result is copied into one output allocated at the first chunk, not
        kept in a list for a final ``cat``: thousands of small results that outlive each
        chunk's freed activation buffers fragmented the C heap, and a 1344 x 1344 output
        at two threads held 1.3 GiB instead of 0.5 (docs/performance.md, `ciaosr upscale`
        end to end).

        On a CPU with several threads, inference decodes whole chunks side by side, one
        thread each (:func:`ciaosr.runtime.side_by_side`), rather than each small product
        over all threads; ``on_chunk`` is then called from those threads, one call at a
        time, with the queries decoded so far."""
        chunk = min(chunk, self.decoder.max_chunk or chunk)
        if coord.device.type == "cpu":
            chunk = min(chunk, self.decoder.cpu_chunk or chunk)
        total = coord.shape[1]
        self.plan(enc, total)
        enc = replace(enc, prepared=self.decoder.plan_queries(enc.prepared, coord, cell))
        starts = range(0, total, chunk)
        decoded, cancelled = 0, False
        lock = threading.Lock()

        def store(i: int, part: torch.Tensor) -> None:
            nonlocal decoded, cancelled
            out[:, i:i + part.shape[1]] = part
            with lock:  # chunks decoded side by side report one at a time, in the order they end
                decoded += part.shape[1]
                if on_chunk is None or cancelled:  # not called again once it has cancelled
                    return
                try:
                    on_chunk(decoded, total)
                except BaseException:
                    cancelled = True
                    raise

        first = self.decode(enc, coord[:, :chunk], cell[:, :chunk])
        out = first.new_empty((first.shape[0], total, *first.shape[2:]))
        store(0, first)
        del first

        def work(i: int) -> None:
            store(i, self.decode(enc, coord[:, i:i + chunk], cell[:, i:i + chunk]))

        workers = chunk_workers(coord, len(starts) - 1) if self.decoder.side_by_side else 1
        if workers > 1:
            side_by_side(work, starts[1:], workers)
        else:
            for i in starts[1:]:
                work(i)
        return out

    @torch.no_grad()
    def upsample(self, lr: torch.Tensor, size: tuple[int, int], chunk: int = 30000,
                 clamp: bool = True, on_chunk: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """Whole-image super-resolution: (B, 3, H, W) in [0, 1] -> (B, 3, h, w), clamped to
        [0, 1] unless ``clamp=False`` (e.g. to average tiles before clamping, as mmediting).
        ``on_chunk``: as for :meth:`decode_chunked`."""
        b = lr.shape[0]
        h, w = size
        coord = make_coord((h, w), lr.device).unsqueeze(0).expand(b, -1, -1)
        cell = make_cell((h, w), h * w, lr.device).unsqueeze(0).expand(b, -1, -1)
        pred = self.decode_chunked(self.encode(lr), coord, cell, chunk, on_chunk)
        img = self.to_image(pred)
        if clamp:
            img = img.clamp(0, 1)
        return img.view(b, h, w, 3).permute(0, 3, 1, 2).contiguous()


class ImplicitSRModel(ChunkedDecoding, nn.Module):
    """An encoder trunk, an implicit decoder, the input normalisation, an optional
    global bilinear residual (CiaoSR and LTE have one, LIIF and MetaSR do not).

    Predictions are in the normalised space (what the training loss compares);
    ``to_image`` maps them back to [0, 1] RGB.
    """

    def __init__(self, encoder: nn.Module, decoder: Decoder, *, mean, std, residual: bool,
                 spec: dict | None = None):
        super().__init__()
        #: What rebuilds this model: {"name", "encoder_args", "decoder_args"} (None when
        #: assembled by hand); saved in checkpoints.
        self.spec = spec
        #: The shipped-weights entry (``models.pretrained.Pretrained``) it was loaded
        #: from, if any, and the metadata of the checkpoint file it was loaded from.
        self.pretrained = None
        self.metadata: dict = {}
        # Channels-last convolutions run about 1.5-2x faster on CPU (oneDNN) and on GPU.
        self.encoder = encoder.to(memory_format=torch.channels_last)
        self.decoder = decoder
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.residual = residual

    # --- normalisation -------------------------------------------------------
    def normalise(self, img: torch.Tensor) -> torch.Tensor:
        return (img - self.mean.to(img.dtype)) / self.std.to(img.dtype)

    def normalise_target(self, rgb: torch.Tensor) -> torch.Tensor:
        """(B, Q, 3) RGB in [0, 1] -> the space ``decode`` predicts in."""
        return (rgb - self.mean.view(1, 1, 3).to(rgb.dtype)) / self.std.view(1, 1, 3).to(rgb.dtype)

    def to_image(self, pred: torch.Tensor) -> torch.Tensor:
        """(B, Q, 3) normalised prediction -> RGB in [0, 1] (not clamped)."""
        return pred * self.std.view(1, 1, 3).to(pred.dtype) + self.mean.view(1, 1, 3).to(pred.dtype)

    # --- the two halves ------------------------------------------------------
    def encode(self, lr: torch.Tensor) -> EncodedImage:
        """``lr``: (B, 3, H, W) RGB in [0, 1]."""
        x = self.normalise(lr)
        feat = self.encoder(x.contiguous(memory_format=torch.channels_last))
        return EncodedImage(x, feat, self.decoder.prepare(feat))

    def plan(self, enc: EncodedImage, num_queries: int) -> None:
        """Tell the decoder how many queries per image ``enc`` will be asked in all."""
        self.decoder.plan(enc.prepared, num_queries)

    def decode(self, enc: EncodedImage, coord: torch.Tensor, cell: torch.Tensor, **options) -> torch.Tensor:
        """(B, Q, 2) coordinates and cells -> (B, Q, 3) normalised prediction, for one
        chunk of queries (``plan`` first, or ``decode_chunked``, to let the decoder use
        work that pays off for dense queries). ``options``: the decoder's own query
        options (LMF's ``table_cell`` and ``clip``, for CMSR)."""
        pred = self.decoder.query(enc.prepared, coord, cell, **options)
        if self.residual:
            base = F.grid_sample(
                enc.lr_norm, coord.flip(-1).unsqueeze(1).to(enc.lr_norm.dtype),
                mode="bilinear", padding_mode="border", align_corners=False,
            )[:, :, 0, :].permute(0, 2, 1)
            pred = pred + base.to(pred.dtype)
        return pred

    def forward(self, lr: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        enc = self.encode(lr)
        self.plan(enc, coord.shape[1])
        return self.decode(enc, coord, cell)


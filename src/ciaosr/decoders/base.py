"""The contract every implicit decoder follows.

A decoder turns an encoder's feature map into colours at arbitrary continuous
coordinates, in two halves:

* ``prepare(feat)``: all per-LR-pixel work, once per image (or tile); returns the
  decoder's own prepared object (plain tensors, plus any caches as explicit objects);
* ``query(prepared, coord, cell)``: per-query work only, once per chunk of queries.
  It never changes ``prepared``'s tensors, so chunks can come in any order and size.

``tables(prepared)`` names the prepared object's tensors and ``from_tables(tables, size)``
rebuilds it from them: the two halves can then run apart (the exported ONNX graphs,
:mod:`ciaosr.onnx`).

``plan(prepared, num_queries)`` is told, before the first chunk, how many queries per
image are coming in all: a decoder may then decide on work that pays off only for dense
queries (CiaoSR's logit tables). The chunk hints and the tiling hints are declared
class attributes that callers read directly.

The straightforward computations of the official code, kept for tests and benchmarks,
live in :mod:`ciaosr.decoders.reference`, not in the production classes.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Decoder(nn.Module):
    #: Queries decoded at once, at most (a memory bound); None: no bound of its own.
    max_chunk: int | None = None
    #: Queries per chunk on the CPU, where small chunks run fastest (their activation
    #: buffers stay in cache; 1024 measured fastest, docs/performance.md); None: the
    #: caller's.
    cpu_chunk: int | None = None
    #: Whether, on a CPU with several threads, whole chunks may be decoded side by side,
    #: one thread each (``runtime.side_by_side``); the reference computations decode
    #: one chunk after another over all threads, as the official code does.
    side_by_side: bool = True
    #: The largest LR tile ``prepare`` should be given (None: any); CiaoSR's non-local
    #: attention searches the whole tile, at a cost that grows with its area squared.
    max_tile: int | None = None
    #: Whether the model adds a global bilinear residual of the input to this decoder's
    #: output; None: the convention registered for the decoder (``register_decoder``).
    #: A decoder with a switch for it (CiaoSR's ``residual``) sets it per instance.
    global_residual: bool | None = None

    #: Key prefixes of this decoder's tensors in official state dicts (in the mmediting
    #: layout nothing else tells them from the encoder's).
    official_prefixes: tuple[str, ...] = ()
    #: Its name in the LIIF code base's checkpoints (``{'model': {'name': ...}}``).
    liif_name: str | None = None
    #: Why its query half cannot be exported as a graph of its own (``ciaosr.onnx``), or
    #: None: it can.
    not_exportable: str | None = None
    #: Why an upscale in several tiles differs from the whole-image one everywhere, not only
    #: near the seams as every model's (a tile's encoder lacks the context beyond it), or
    #: None (``inference.tiling`` warns once when it tiles such a decoder).
    tiles_differ: str | None = None

    @classmethod
    def official_args(cls, sd: dict, spec_args: dict | None = None) -> dict | None:
        """Constructor arguments (all but ``in_dim``) for the decoder part ``sd`` of an
        official checkpoint (keys without prefix), given the official spec's arguments
        when the file has them; None when ``sd`` is not this decoder's."""
        return None

    def __init__(self, in_dim: int):
        super().__init__()
        self.in_dim = in_dim

    def prepare(self, feat: torch.Tensor) -> Any:
        """(B, C, H, W) features -> the decoder's per-image prepared object."""
        raise NotImplementedError

    def query(self, prepared: Any, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """(B, Q, 2) coordinates and cells -> (B, Q, out_dim) predictions."""
        raise NotImplementedError

    def tables(self, prepared: Any) -> dict[str, torch.Tensor]:
        """The tensors of ``prepared`` that ``query`` needs, by name, each with the batch
        first (what an exported encode graph returns, :mod:`ciaosr.onnx`); by default
        ``prepared`` itself, a dict of tensors."""
        return dict(prepared)

    def from_tables(self, tables: dict[str, torch.Tensor], size: tuple[int, int]) -> Any:
        """The prepared object of ``tables`` (as :meth:`tables` gives them) of an H x W
        feature map: the inverse of :meth:`tables`."""
        return dict(tables)

    def plan(self, prepared: Any, num_queries: int) -> None:
        """Told how many queries per image will be asked of ``prepared`` (all chunks)."""

    def plan_queries(self, prepared: Any, coord: torch.Tensor, cell: torch.Tensor) -> Any:
        """Told all the (B, Q, 2) queries before they are decoded in chunks: the prepared
        object the chunks are to use, by default ``prepared`` itself. A decoder whose
        output depends on the whole query set (SRNO's attention over all queries) returns
        one that holds that set's statistics, leaving ``prepared`` as it was."""
        return prepared

    def prepare_bytes(self, pixels: int) -> int:
        """Estimated peak bytes of ``prepare`` for an input of ``pixels`` LR pixels (what
        a tiler must budget for): by default the 3x3-unfolded features and the
        decoder's other per-pixel maps, about 19 C floats per pixel, deliberately on the
        high side; decoders that know their tables declare them."""
        return 4 * 19 * self.in_dim * pixels

    def forward(self, feat: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        prepared = self.prepare(feat)
        self.plan(prepared, coord.shape[1])
        return self.query(prepared, coord, cell)

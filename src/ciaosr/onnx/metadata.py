"""The ``metadata_props`` of an exported pair: everything a runner needs besides the graphs.

Keys (all strings; JSON where the value is structured), the same in both files except
``ciaosr.graph`` and ``ciaosr.pair``:

* ``ciaosr.format``: ``FORMAT``; files without it are not ours and are refused;
* ``ciaosr.graph``: ``encode`` or ``query``; ``ciaosr.pair``: the other file's name,
  in the same folder;
* ``ciaosr.model``: the model name (``edsr-baseline-liif``); ``ciaosr.spec``: its
  constructor arguments; ``ciaosr.weights``: a SHA-256 of its weights;
* ``ciaosr.mean``, ``ciaosr.std``: the input normalisation ``(rgb - mean) / std``, done
  inside the encode graph (its ``lr_norm`` output) and undone inside the query graph;
* ``ciaosr.residual``: ``true`` when the query graph adds the bilinear sample of
  ``lr_norm`` at each query (the global residual), ``false`` otherwise;
* ``ciaosr.tables``: the encode graph's outputs after ``lr_norm``, in order (the query
  graph's inputs between ``lr_norm`` and ``coord``);
* ``ciaosr.min_size``, ``ciaosr.max_size``: the smallest and largest LR side the encode
  graph takes (``max_size`` 0: no limit); the tiler keeps its tiles within them;
* ``ciaosr.tiling``: the tiler's hints, ``max_tile``, ``max_chunk``, ``cpu_chunk``,
  ``side_by_side`` (``decoders.base.Decoder``) and the memory estimates
  (``models.memory.TileMemory``);
* ``ciaosr.version``, ``ciaosr.torch``, ``ciaosr.exporter``: what wrote the files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..errors import CiaosrError

FORMAT = "ciaosr-onnx-1"
PREFIX = "ciaosr."


@dataclass(frozen=True)
class GraphHints:
    """The decoder's chunk and tile hints, as the tiler and ``ChunkedDecoding`` read
    them from ``model.decoder``."""

    max_tile: int | None
    max_chunk: int | None
    cpu_chunk: int | None
    side_by_side: bool

    def plan_queries(self, prepared, coord, cell):
        """``Decoder.plan_queries``: an exported graph plans nothing from the queries."""
        return prepared


def write_props(proto, props: dict[str, str]) -> None:
    """Set ``props`` (keys without the prefix) as ``proto``'s metadata_props."""
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = PREFIX + key, str(value)


def read_props(proto, where: str) -> dict[str, str]:
    """The ``ciaosr.*`` metadata of ``proto`` (keys without the prefix), or a one-line
    error when the file is not one ``ciaosr export`` wrote."""
    props = {p.key[len(PREFIX):]: p.value for p in proto.metadata_props if p.key.startswith(PREFIX)}
    if props.get("format") != FORMAT:
        found = f"format {props['format']!r}" if "format" in props else "no ciaosr metadata"
        raise CiaosrError(f"{where}: an ONNX file, but not a model that 'ciaosr export' wrote ({found}; "
                          f"expected {FORMAT})")
    return props


def hints(props: dict[str, str]) -> GraphHints:
    tiling = json.loads(props["tiling"])
    return GraphHints(tiling["max_tile"], tiling["max_chunk"], tiling["cpu_chunk"], bool(tiling["side_by_side"]))


__all__ = ["FORMAT", "GraphHints", "write_props", "read_props", "hints"]

"""ONNX Runtime as an inference backend: an exported pair behind the model interface the
tiler uses (``encode``, ``plan``, ``decode``, ``to_image``, and ``ChunkedDecoding``'s
``decode_chunked`` and ``upsample``), so ``inference.tiling`` and ``inference.upscale``
run it exactly as a torch model: the same tiles, chunks, sizes and outputs.

Threads: the encode graph runs on ``torch.get_num_threads()`` threads (``set_threads``,
``--threads``) at the time the model is opened; the query graph on one thread per call,
and the chunks are decoded side by side on that many threads (``runtime.side_by_side``), as
the torch path decodes them. Only the CPU execution provider is used.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import CiaosrError
from ..models.memory import TileMemory
from ..models.sr_model import ChunkedDecoding, EncodedImage
from . import require
from .metadata import GraphHints, hints, read_props


def _load_proto(path: Path):
    """The graph's ModelProto without its weights (enough for the metadata), or a one-line
    error for a file that is missing or not ONNX."""
    import onnx

    if not path.is_file():
        raise CiaosrError(f"{path}: no such file")
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise CiaosrError(f"{path}: not a readable ONNX file ({type(exc).__name__})") from None


def _session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    # ORT's arena keeps the largest allocations for reuse: with it, 192 x 192 x4 with the
    # shipped LIIF peaked at 471 MiB, without it at 388 (CPU time +6%; torch: 341 MiB).
    options.enable_cpu_mem_arena = False
    # Nodes in priority order: CiaoSR's encode graph at a 192 tile peaked at 1.78 GB, with
    # ORT's default order at 2.09 (docs/deploy.md, Speed).
    options.execution_order = ort.ExecutionOrder.PRIORITY_BASED
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise CiaosrError(f"{path}: ONNX Runtime cannot load it ({first[:200]})") from None


class OnnxModel(ChunkedDecoding):
    """An exported pair (``X.onnx`` and ``X.query.onnx``) run by ONNX Runtime."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        require("onnx", "onnxruntime")
        path = Path(path)
        props = read_props(_load_proto(path), str(path))
        if props.get("graph") == "query":  # the query graph given: its encode graph is the pair
            path = path.with_name(props["pair"])
            props = read_props(_load_proto(path), str(path))
        if props.get("graph") != "encode":
            raise CiaosrError(f"{path}: ciaosr metadata without a graph role ('encode' or 'query')")
        query_path = path.with_name(props["pair"])
        query_props = read_props(_load_proto(query_path), str(query_path))
        if query_props.get("weights") != props["weights"] or query_props.get("graph") != "query":
            raise CiaosrError(f"{query_path}: not the query graph of {path} (exported from other weights)")
        self.path, self.query_path, self.props = path, query_path, props
        self.name = props["model"]
        self.spec = json.loads(props["spec"])
        self.tables = json.loads(props["tables"])
        self.min_size, self.max_size = int(props["min_size"]), int(props["max_size"])
        #: The tiler's and the chunked decoding's hints (read where a torch model has its decoder).
        self.decoder: GraphHints = hints(props)
        tiling = json.loads(props["tiling"])
        self.tile_memory = TileMemory(tiling["encode_fixed"], tiling["encode_per_pixel"], tiling["query_bytes"])
        threads = torch.get_num_threads() if threads is None else int(threads)
        self._encode = _session(path, threads)
        self._query = _session(query_path, 1 if self.decoder.side_by_side else threads)

    # --- the model interface of inference.tiling ----------------------------------------------
    def to(self, device) -> "OnnxModel":
        if torch.device(device).type != "cpu":
            raise CiaosrError(f"the onnxruntime backend runs on the CPU, not {device}")
        return self

    def eval(self) -> "OnnxModel":
        return self

    def encode(self, lr: torch.Tensor) -> EncodedImage:
        """(B, 3, H, W) in [0, 1] -> the normalised input and the tables, one image per run
        of the encode graph, stacked (what the query graph takes)."""
        h, w = lr.shape[-2:]
        if min(h, w) < self.min_size or (self.max_size and max(h, w) > self.max_size):
            most = f" to {self.max_size}" if self.max_size else " or more"
            hint = f" (--tile {self.max_size} or less)" if self.max_size and max(h, w) > self.max_size else ""
            raise CiaosrError(f"{self.path.name}: its encode graph takes {self.min_size}{most} LR pixels a side, "
                              f"got {w}x{h}{hint}")
        images = lr.detach().float().cpu().numpy()
        runs = [self._encode.run(None, {"lr": np.ascontiguousarray(images[i:i + 1])}) for i in range(len(images))]
        outs = [np.concatenate(parts) if len(runs) > 1 else parts[0] for parts in zip(*runs)]
        return EncodedImage(torch.from_numpy(outs[0]), None, dict(zip(self.tables, outs[1:])))

    def plan(self, enc: EncodedImage, num_queries: int) -> None:
        """Nothing to plan: the query graph computes every query alike."""

    def decode(self, enc: EncodedImage, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """(B, Q, 2) coordinates and cells -> (B, Q, 3) RGB (not clamped)."""
        feeds = {"lr_norm": enc.lr_norm.numpy(), **enc.prepared,
                 "coord": np.ascontiguousarray(coord.detach().float().cpu().numpy()),
                 "cell": np.ascontiguousarray(cell.detach().float().cpu().numpy())}
        return torch.from_numpy(self._query.run(None, feeds)[0])

    def to_image(self, pred: torch.Tensor) -> torch.Tensor:
        """The query graph returns RGB already."""
        return pred

    def __repr__(self) -> str:
        return f"OnnxModel({self.name}, {self.path})"



def load_onnx_model(model=None) -> OnnxModel:
    """An :class:`OnnxModel` from an exported ``.onnx`` file (either graph of the pair), or
    from anything ``load_model`` takes or a torch model, exported on the fly into the cache
    (``ciaosr.onnx.cache``)."""
    if isinstance(model, OnnxModel):
        return model
    require("onnx", "onnxruntime")
    if isinstance(model, (str, os.PathLike)) and str(model).endswith(".onnx"):
        return OnnxModel(model)
    from .cache import cached_export

    if not isinstance(model, torch.nn.Module):
        from ..checkpoints.loader import load_model

        model = load_model(model)
    return OnnxModel(cached_export(model))


__all__ = ["OnnxModel", "load_onnx_model"]

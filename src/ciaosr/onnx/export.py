"""``export_onnx``: a model -> its encode and query graphs, checked, with their metadata.

The exporter is ``torch.onnx.export(..., dynamo=True)`` (``torch.export``, then
onnxscript's translation; the TorchScript exporter cannot keep the sizes that the
decoders compute from shapes dynamic), opset ``OPSET``, without onnxscript's graph
optimiser: onnxscript 0.7.2's drops ``x + 1e-9`` as if it added zero, and LIIF's area
weights then divide 0 by 0 for queries on a pixel centre (ONNX Runtime optimises the
graph itself when it loads it). The encode graph takes one
image, ``lr`` (1, 3, H, W), H and W dynamic within ``ciaosr.min_size`` .. ``max_size``;
the query graph any batch of images' tables and any number of queries (B and Q dynamic).
Both are made side by side in a staging folder, checked by ``onnx.checker``, refused if
a size that must be dynamic came out fixed, and published together (``ciaosr.atomic``:
all or none; the output's missing folders are created, and removed again on failure).
Weights over ``EXTERNAL_BYTES`` go to an external data file (``<file>.data``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import warnings
from pathlib import Path

import torch

from .. import __version__
from ..atomic import AlreadyExists, check_output_folder, output_folders, publish_all, staging_folder
from ..errors import CiaosrError
from . import require
from .graphs import EncodeGraph, QueryGraph, table_names
from .metadata import FORMAT, write_props

OPSET = 18
#: Weights of more bytes than this go to an external data file (protobuf's own limit is
#: 2 GiB; smaller files stay one file, simpler to carry).
EXTERNAL_BYTES = 64 << 20
#: The example LR size the graphs are traced at: unequal sides (nothing specialised to
#: square inputs), even ones (with odd sides torch.export 2.13 fails on CiaoSR's
#: reflect-padding to an even size: "Cannot create Dim with inconsistent min=0, max=-96").
EXAMPLE_HW = (36, 44)


def pair_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """The encode graph ``X.onnx`` and its query graph ``X.query.onnx``."""
    path = Path(path)
    if path.suffix != ".onnx" or path.name.endswith(".query.onnx"):
        raise CiaosrError(f"{path}: the output must be named <name>.onnx (its query graph goes to "
                          f"<name>.query.onnx)")
    return path, path.with_name(path.name[:-len(".onnx")] + ".query.onnx")


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 of the model's state (names and values), for the metadata and the cache."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def size_limits(model) -> tuple[int, int]:
    """(smallest, largest) LR side of the encode graph (largest 0: none). SwinIR pads to
    its window by one reflection (the graph cannot loop), so a side needs a window; CiaoSR's
    non-local attention reflect-pads to an even size and searches one window of
    ``cs_attn.tile`` (larger inputs go through its own tiling, which the graph does not
    have), in ``export_bands`` bands of rows: the graph takes up to that window, and at
    least a row per band."""
    smallest = max(2, int(getattr(model.encoder, "window_size", 1)))
    attention = getattr(model.decoder, "cs_attn", None)
    if attention is not None:  # one row per band at least (ONNX Runtime refuses empty ones)
        smallest = max(smallest, attention.export_bands)
    largest = int(attention.tile) if attention is not None and attention.tile is not None else 0
    return smallest, largest


def _metadata(model, names: list[str], limits: tuple[int, int]) -> dict[str, str]:
    from ..models.memory import TileMemory

    decoder = model.decoder
    memory = TileMemory.of(model)  # the torch model's: both backends plan the same tiles
    spec = model.spec or {}
    return {
        "format": FORMAT,
        "model": spec.get("name", type(model).__name__),
        "spec": json.dumps(spec, sort_keys=True),
        "weights": weights_digest(model),
        "mean": json.dumps([float(v) for v in model.mean.flatten()]),
        "std": json.dumps([float(v) for v in model.std.flatten()]),
        "residual": "true" if model.residual else "false",
        "tables": json.dumps(names),
        "min_size": str(limits[0]),
        "max_size": str(limits[1]),
        "tiling": json.dumps({"max_tile": decoder.max_tile, "max_chunk": decoder.max_chunk,
                              "cpu_chunk": decoder.cpu_chunk, "side_by_side": bool(decoder.side_by_side),
                              "encode_fixed": memory.fixed, "encode_per_pixel": memory.per_pixel,
                              "query_bytes": memory.per_query}),
        "version": __version__,
        "torch": torch.__version__,
        "exporter": f"torch.onnx.export(dynamo=True), opset {OPSET}",
    }


def _trace(module, args, dynamic_shapes, input_names, output_names, what: str):
    """torch.onnx.export's program of ``module``, or a one-line error naming the part."""
    quiet = logging.getLogger("torch.onnx")  # it lists the torchvision ops it skips
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            return torch.onnx.export(module, args, dynamo=True, dynamic_shapes=dynamic_shapes,
                                     input_names=input_names, output_names=output_names,
                                     opset_version=OPSET, verbose=False, optimize=False)
    except Exception as exc:  # the exporter's own errors are many pages; the first line names the op
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise CiaosrError(f"{what} does not export to ONNX: {first[:300]}") from None
    finally:
        quiet.setLevel(level)


def _check_dynamic(proto, dims: dict[str, tuple[int, ...]], what: str) -> None:
    """Refuse a graph whose input axes that must stay dynamic came out as fixed numbers."""
    for inp in proto.graph.input:
        for axis in dims.get(inp.name, ()):
            dim = inp.type.tensor_type.shape.dim[axis]
            if not dim.dim_param:
                raise CiaosrError(f"{what}: input '{inp.name}' axis {axis} came out fixed at {dim.dim_value} "
                                  f"(a part of the model specialises it)")


def _save(proto, path: Path, external: bool) -> None:
    import onnx

    if external:
        onnx.save_model(proto, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=path.name + ".data", size_threshold=1024)
    else:
        onnx.save_model(proto, str(path))
    onnx.checker.check_model(str(path))  # by path: external data and large models too


@torch.no_grad()
def _examples(model, eg: EncodeGraph) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    gen = torch.Generator().manual_seed(0)
    lr = torch.rand(1, 3, *EXAMPLE_HW, generator=gen)
    # two images for the query graph, so that its batch is not specialised to 1
    outs = [eg(torch.rand(1, 3, *EXAMPLE_HW, generator=gen)) for _ in range(2)]
    return lr, tuple(torch.cat(parts) for parts in zip(*outs))


def export_onnx(model, path: str | os.PathLike, *, overwrite: bool = False, external: bool | None = None,
                attention_bands: int | None = None) -> tuple[Path, Path]:
    """Export ``model`` (an ``ImplicitSRModel``) to ``path`` (``X.onnx``, the encode graph)
    and ``X.query.onnx``; returns both paths. Existing files are kept unless
    ``overwrite``. ``external``: weights to ``<file>.data`` (None: when over
    ``EXTERNAL_BYTES``). ``attention_bands``: CiaoSR's non-local attention bands in the
    graph (``CrossScaleAttention.export_bands``; fewer export faster, more bound memory)."""
    reason = getattr(model.decoder, "not_exportable", None)
    if reason:
        name = (model.spec or {}).get("name", type(model).__name__)
        raise CiaosrError(f"{name} cannot be exported to ONNX: {reason}")
    require("onnx", "onnxscript")
    encode_path, query_path = pair_paths(path)
    for target in (encode_path, query_path):
        if target.exists() and not overwrite:
            raise AlreadyExists(target)
    check_output_folder(encode_path.parent)  # made when the graphs are written
    model = model.cpu().float().eval()
    name = (model.spec or {}).get("name", type(model).__name__)
    attention = getattr(model.decoder, "cs_attn", None)
    saved_bands = attention.export_bands if attention is not None else None
    if attention is not None and attention_bands is not None:
        attention.export_bands = int(attention_bands)
    try:
        names = table_names(model)
        limits = size_limits(model)
        props = _metadata(model, names, limits)
        eg, qg = EncodeGraph(model).eval(), QueryGraph(model, names).eval()
        lr, outs = _examples(model, eg)
        big = torch.export.Dim("H", min=limits[0], max=limits[1] or torch.iinfo(torch.int32).max)
        wide = torch.export.Dim("W", min=limits[0], max=limits[1] or torch.iinfo(torch.int32).max)
        batch, queries = torch.export.Dim("B", min=1), torch.export.Dim("Q", min=1)
        pixels = torch.export.Dim("HW", min=1)
        table_dims = []
        for table_name, t in zip(names, outs[1:]):
            if t.dim() == 4 and tuple(t.shape[-2:]) == EXAMPLE_HW:
                table_dims.append({0: batch, 2: big, 3: wide})
            elif t.dim() == 3 and t.shape[1] == EXAMPLE_HW[0] * EXAMPLE_HW[1]:
                table_dims.append({0: batch, 1: pixels})
            else:
                raise CiaosrError(f"{name}: table '{table_name}' of shape {tuple(t.shape)} is neither (B, C, H, W) "
                                  f"nor (B, H*W, C)")
        n = 64
        coord = torch.rand(2, n, 2) * 2 - 1
        cell = torch.full((2, n, 2), 2 / (4 * EXAMPLE_HW[0]))
        what = f"{name} ({type(model.encoder).__name__} + {type(model.decoder).__name__})"
        encode = _trace(eg, (lr,), ({2: big, 3: wide},), ["lr"], ["lr_norm", *names], f"{what}, encode graph")
        query = _trace(qg, (outs[0], *outs[1:], coord, cell),
                       ({0: batch, 2: big, 3: wide}, (*table_dims, {0: batch, 1: queries}, {0: batch, 1: queries})),
                       ["lr_norm", *names, "coord", "cell"], ["rgb"], f"{what}, query graph")
    finally:
        if attention is not None:
            attention.export_bands = saved_bands
    big_weights = sum(p.numel() * p.element_size() for p in model.parameters()) > EXTERNAL_BYTES
    external = big_weights if external is None else external
    with output_folders(encode_path.parent), staging_folder(encode_path.parent, f".{encode_path.name}.") as folder:
        for program, graph, target, pair, dims in (
                (encode, "encode", encode_path, query_path, {"lr": (2, 3)}),
                (query, "query", query_path, encode_path, {"lr_norm": (0, 2, 3), "coord": (0, 1), "cell": (0, 1)})):
            proto = program.model_proto
            _check_dynamic(proto, dims, f"{what}, {graph} graph")
            write_props(proto, {**props, "graph": graph, "pair": pair.name})
            try:
                _save(proto, folder / target.name, external)
            except OSError as exc:  # a full disk, say
                raise CiaosrError(f"{target}: cannot write ({exc.strerror or exc})") from None
        publish_all(folder, encode_path.parent, overwrite)  # the graphs and their external data
    return encode_path, query_path


__all__ = ["export_onnx", "pair_paths", "weights_digest", "size_limits", "OPSET", "EXTERNAL_BYTES"]

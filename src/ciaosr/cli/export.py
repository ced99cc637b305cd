"""``ciaosr export``: a model -> its ONNX encode and query graphs (``ciaosr.onnx``)."""

from __future__ import annotations

import time

from .command import Command


def arguments(p) -> None:
    p.add_argument("model", metavar="MODEL",
                   help="model name with shipped weights, our .safetensors file or an official checkpoint")
    p.add_argument("-o", "--output", required=True, metavar="OUT.onnx",
                   help="the encode graph's file; the query graph goes next to it as OUT.query.onnx")
    p.add_argument("--overwrite", action="store_true", help="replace existing files")


def run(args) -> int:
    from ..atomic import check_output_folder
    from ..checkpoints.loader import load_model
    from ..onnx import require
    from ..onnx.export import export_onnx, pair_paths

    require("onnx", "onnxscript")
    encode, _ = pair_paths(args.output)  # a bad output name or folder is refused before the model is loaded
    check_output_folder(encode.parent)  # a missing one is created when the graphs are written
    model = load_model(args.model)
    t0 = time.perf_counter()
    encode, query = export_onnx(model, args.output, overwrite=args.overwrite)
    print(f"{args.model}: {encode} (encode) and {query} (query), {time.perf_counter() - t0:.1f} s")
    return 0


COMMAND = Command(
    "export", help="export a model to ONNX (encode and query graphs)",
    description="Export a model to ONNX as two graphs, the model's own contract:\n"
                "  OUT.onnx        the encode-and-prepare graph: lr (1, 3, H, W) RGB in [0, 1] ->\n"
                "                  lr_norm and the per-image tables (H, W dynamic)\n"
                "  OUT.query.onnx  the query graph: lr_norm, the tables, coord and cell (B, Q, 2) ->\n"
                "                  rgb (B, Q, 3) in [0, 1], not clamped (B, Q dynamic)\n"
                "Weights over 64 MiB go to OUT.onnx.data (and OUT.query.onnx.data). The model name,\n"
                "normalisation, residual rule and tile limits are in both files' metadata_props.\n"
                "Run them with 'ciaosr upscale --backend onnxruntime --model OUT.onnx', or see\n"
                "docs/deploy.md. Needs the onnx extra: pip install 'ciaosr[onnx]'.",
    raw=True,
    arguments=arguments, run=run)

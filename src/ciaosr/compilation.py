"""``torch.compile`` (inductor) for a model: ``--compile`` on ``ciaosr upscale`` and
``ciaosr eval``, ``train.compile: true`` in training.

What is compiled, each as one whole graph (``fullgraph=True``: a graph break is an
error, not a silent fallback):

* the encoder's ``forward`` (EDSR, RDN, SwinIR);
* the decoder's ``query``, the per-query step every decoder has.

The decoder's ``prepare`` (once per image or tile) stays eager: it makes a
``Workspace``, a Python cache of reusable buffers, which Dynamo cannot trace.

A decoder whose query cannot be compiled well stays eager there (``EAGER_QUERIES``, with
the reason); its encoder is still compiled.

Shapes: compiled with dynamic sizes from the start (``dynamic=True``), so tiles, chunks
of queries and images of any size reuse the graphs. Dynamo also guards on the CPU thread
count: the chunks decoded side by side (``runtime.side_by_side``, one thread each) and an
automatic thread count that changes (``--threads auto``) compile once per count used.
So a process compiles a handful of graphs on its first image and none after (tested
over three image sizes in tests/test_compile.py); :func:`compile_count` counts them.

The compiled functions are bound to the model as methods, so a deep copy (the EMA
shadow, ``copy.deepcopy``) runs with the copy's own weights.
"""

from __future__ import annotations

import types

import torch

from .errors import CiaosrError


#: Decoders whose query stays eager, and why (by the decoder's class name).
EAGER_QUERIES = {
    "CiaoSRDecoder": "in inference its query looks the keys' tables up in a cache of row bands (decoders/"
                     "ciaosr.py, LogitTables.rows: a lock and Python lists, shared by the chunks decoded side by "
                     "side), a graph break; compiled in pieces with dynamic sizes, inductor fails "
                     "(size_bytes_is_heap_allocated_, PyTorch 2.13); with static sizes every band and chunk "
                     "shape recompiles (past Dynamo's limit of 8 on one 30 x 34 image) and the output moved "
                     "by 2e-5",
}


def compile_model(model):
    """Compile ``model``'s encoder and (except for ``EAGER_QUERIES``) its decoder's query
    in place, each as one graph; once (again is a no-op). Returns ``model``. Nothing
    runs until the first call."""
    if getattr(model, "compiled", False):
        return model
    if not hasattr(torch, "compile"):
        raise CiaosrError(f"--compile needs torch.compile (PyTorch 2), this is PyTorch {torch.__version__}")
    enc, dec = model.encoder, model.decoder
    enc.forward = types.MethodType(torch.compile(type(enc).forward, fullgraph=True, dynamic=True), enc)
    if type(dec).__name__ not in EAGER_QUERIES:
        dec.query = types.MethodType(torch.compile(type(dec).query, fullgraph=True, dynamic=True), dec)
    model.compiled = True
    return model


def compile_count() -> int:
    """Graphs compiled so far in this process (Dynamo's count of unique graphs)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


__all__ = ["EAGER_QUERIES", "compile_model", "compile_count"]

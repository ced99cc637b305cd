"""ONNX export of every model, and ONNX Runtime as a second inference backend.

A model is exported as the pair of graphs of its own contract (``graphs``): the
encode-and-prepare graph ``<name>.onnx`` and the query graph ``<name>.query.onnx``, each
with the metadata a runner needs (``metadata``). ``export`` writes them;
``runtime.OnnxModel`` runs them with ONNX Runtime behind the interface the tiler uses,
so ``ciaosr upscale --backend onnxruntime`` has the torch path's tiles, sizes and outputs;
``cache`` exports a torch model on the fly, once. docs/deploy.md shows how to run the pair
elsewhere. Needs the ``onnx`` extra (``pip install 'ciaosr[onnx]'``).
"""

from __future__ import annotations

from ..errors import CiaosrError


def require(*modules: str) -> None:
    """A one-line ``CiaosrError`` naming the extra when a module of it is missing."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise CiaosrError(f"{', '.join(missing)} not installed: ONNX export and the onnxruntime backend need "
                          f"the onnx extra (pip install 'ciaosr[onnx]')")

"""The float32 matrix products of CPU inference, through whichever library is faster here.

PyTorch runs a CPU float32 ``addmm``/``mm`` through its BLAS (MKL in the official wheels),
and oneDNN only where asked. Which is faster depends on the processor: on the Intel Xeon
the project was first measured on they were even, while on an AMD EPYC (2026-12-03) MKL
reached about 55 GMAC/s per core on the decoders' (4096 x 256) @ (256 x 256) products
and oneDNN about 124 (``benchmarks/gemm_backends.py``, docs/performance.md). Both compute in float32 (oneDNN's
default math mode; no bf16 or tf32 shortcuts), and results differ by rounding only.

So the inference paths call :func:`linear` and :func:`matmul`, which take the faster of
the two, chosen once per process by timing one such product both ways (:func:`backend`),
or as set by ``CIAOSR_CPU_GEMM=blas|onednn|auto``. Training (autograd), other devices
and dtypes, autocast, and graphs being compiled or exported keep PyTorch's own products.
(Training through oneDNN too, with the gradients' products in it, was tried: a CiaoSR
step 1.17-1.21x faster, a LIIF step 0.94-0.97x; not kept.) oneDNN also fuses the bias and
the ReLU into the product, but cannot write into a given buffer; the BLAS path keeps
writing into the workspace's (``workspace.py``).
"""

from __future__ import annotations

import os
import threading
import time

import torch

from ..errors import CiaosrError

BACKENDS = ("auto", "blas", "onednn")
ENV = "CIAOSR_CPU_GEMM"
#: oneDNN is taken when its probe product is at least this much faster than BLAS's.
MARGIN = 1.1

_lock = threading.Lock()
_chosen: str | None = None
_probe: dict[str, float] = {}


def _onednn_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _time(fn, repeats: int = 5) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def probe() -> dict[str, float]:
    """Seconds of one (1024 x 256) @ (256 x 256) + bias product on one thread, per
    library (best of 5)."""
    gen = torch.Generator().manual_seed(0)
    x, w, b = (torch.randn(*shape, generator=gen) for shape in ((1024, 256), (256, 256), (256,)))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            times = {"blas": _time(lambda: torch.addmm(b, x, w.t()))}
            if _onednn_available():
                times["onednn"] = _time(lambda: torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], ""))
    finally:
        torch.set_num_threads(threads)
    return times


def backend() -> str:
    """'blas' or 'onednn': ``CIAOSR_CPU_GEMM`` if set to one of them, else the faster in
    :func:`probe` (once per process)."""
    global _chosen
    if _chosen is not None:
        return _chosen
    with _lock:
        if _chosen is None:
            wanted = os.environ.get(ENV, "auto").strip().lower() or "auto"
            if wanted not in BACKENDS:
                raise CiaosrError(f"{ENV} must be one of {', '.join(BACKENDS)}, not {wanted!r}")
            if wanted == "onednn" and not _onednn_available():
                raise CiaosrError(f"{ENV}=onednn, but this PyTorch has no oneDNN (mkldnn) linear")
            if wanted == "auto":
                _probe.update(probe())
                fast = _probe.get("onednn", float("inf")) * MARGIN <= _probe["blas"]
                wanted = "onednn" if fast else "blas"
            _chosen = wanted
    return _chosen


def reset() -> None:
    """Forget the choice (tests; after changing ``CIAOSR_CPU_GEMM``)."""
    global _chosen
    with _lock:
        _chosen = None
        _probe.clear()


def _eager_cpu_float32(*tensors: torch.Tensor) -> bool:
    """Eager float32 products on the CPU, autocast off (a graph being compiled or exported
    keeps the plain operators, which the compiler or exporter knows; autocast casts them)."""
    if torch.compiler.is_compiling() or torch.compiler.is_exporting() or torch.is_autocast_enabled("cpu"):
        return False
    return all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)


def _use_onednn(*tensors: torch.Tensor) -> bool:
    """Inference products that oneDNN takes."""
    return not torch.is_grad_enabled() and _eager_cpu_float32(*tensors) and backend() == "onednn"


def writes_into(*tensors: torch.Tensor) -> bool:
    """Whether :func:`linear` on these operands writes into the ``out`` it is given (BLAS)
    rather than returning a new tensor (oneDNN), so that a caller takes a buffer only when
    it is used."""
    return not _use_onednn(*tensors)


def _onednn_mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(a, b.t(), None, "none", [], "")


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, *, relu: bool = False,
           out: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ weight.T + bias``, then ReLU if asked; (N, in) -> (N, out). With the BLAS
    backend the result goes into ``out`` when given; oneDNN returns a new tensor."""
    if _use_onednn(x, weight):
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "relu" if relu else "none", [], "")
    if bias is None:
        y = torch.mm(x, weight.t(), out=out) if out is not None else torch.mm(x, weight.t())
    else:
        y = torch.addmm(bias, x, weight.t(), out=out) if out is not None else torch.addmm(bias, x, weight.t())
    return y.relu_() if relu else y


def matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` for 2-D tensors."""
    if _use_onednn(a, b):
        return _onednn_mm(a, b)
    return a @ b

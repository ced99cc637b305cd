"""What the command line offers, without torch: the names some options choose among and
the defaults that the computing modules define.

Each is defined here, once; the module that implements it imports it from here
(``runtime.PRECISIONS``, ``metrics.lpips``, ``data.degradations.settings``,
``inference.upscale``), and ``ciaosr.cli`` builds its parsers from it without importing
torch, which alone takes seconds (``ciaosr --help``; docs/performance.md).
"""

from __future__ import annotations

import os

#: Precisions a model runs in (``runtime.Precision``, whose members take these values).
PRECISIONS = ("fp32", "bf16", "fp16")

#: Inference backends: torch, or ONNX Runtime running the model's exported graphs
#: (``ciaosr.onnx``; CPU, fp32).
BACKENDS = ("torch", "onnxruntime")

#: Largest output, in pixels, made unless the caller raises the limit (``--max-pixels``):
#: 2**28 = 268 million pixels (16384 x 16384); the fp32 result alone is 3 GiB.
DEFAULT_MAX_PIXELS = 2 ** 28

#: LPIPS backbones (``metrics.lpips``).
LPIPS_NETS = ("alex", "vgg")

#: Degradation pipelines (``data.degradations``).
DEGRADATION_PIPELINES = ("realesrgan", "bsrgan")

#: The data root when none is given (``ciaosr data --root``, the configs' ``data_root``):
#: this variable, else ``datasets`` from the current folder, where ``ciaosr data fetch``
#: puts the sets and the training configs read them.
DATA_ROOT_VARIABLE = "CIAOSR_DATA_ROOT"


def default_data_root() -> str:
    return os.environ.get(DATA_ROOT_VARIABLE) or "datasets"


__all__ = ["BACKENDS", "DATA_ROOT_VARIABLE", "DEFAULT_MAX_PIXELS", "DEGRADATION_PIPELINES", "LPIPS_NETS", "PRECISIONS",
           "default_data_root"]

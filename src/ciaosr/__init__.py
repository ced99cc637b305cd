"""ciaosr: arbitrary-scale image super-resolution (CiaoSR, LIIF, LTE, MetaSR).

The public functions are imported on first use (``ciaosr.lazy``), so that importing the
package (the ``ciaosr`` command's start) does not import torch.
"""

from .errors import CiaosrError
from .lazy import lazy_exports

__version__ = "0.1.0"

__all__ = ["load_model", "save_checkpoint", "build_model", "list_models", "CiaosrError", "upscale", "__version__"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "load_model": ".checkpoints.loader",
    "save_checkpoint": ".checkpoints.native",
    "upscale": ".inference.upscale",
    "build_model": ".models.factory",
    "list_models": ".models.registry",
})

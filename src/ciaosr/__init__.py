"""ciaosr: arbitrary-scale image super-resolution (CiaoSR, LIIF, LTE, MetaSR)."""

from .checkpoints.loader import load_model
from .checkpoints.native import save_checkpoint
from .errors import CiaosrError
from .inference.upscale import upscale
from .models.factory import build_model
from .models.registry import list_models

__version__ = "0.1.0"

__all__ = ["load_model", "save_checkpoint", "build_model", "list_models", "CiaosrError", "upscale", "__version__"]

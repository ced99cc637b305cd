"""Degradations that turn high-resolution training crops into realistic low-resolution
inputs (CiaoSR Sec. 5.4): Real-ESRGAN's second-order pipeline with the released CiaoSR
settings, and BSRGAN's shuffled pipeline, batched on the training device.

``degrade`` (``pipelines``) runs one; ``DegradationSettings`` (``settings``) holds and
checks its settings; ``usm_sharpen`` (``sharpen``) sharpens the target. The pieces:
``kernels`` (blur kernels), ``noise``, ``jpeg``, ``resize``, ``filtering`` (per-sample
convolution) and ``draws`` (every random number, from one generator).
"""

from .jpeg import jpeg_compress
from .kernels import KERNEL_TYPES
from .pipelines import degrade
from .settings import PIPELINES, DegradationSettings
from .sharpen import usm_sharpen

__all__ = ["DegradationSettings", "degrade", "usm_sharpen", "jpeg_compress", "KERNEL_TYPES", "PIPELINES"]

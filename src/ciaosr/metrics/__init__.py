"""Image quality metrics: PSNR and SSIM as the super-resolution papers compute them
(``psnr``, ``ssim``), LPIPS (``lpips``) and the no-reference NIQE, BRISQUE and PIQE
(``niqe``, ``brisque``, ``piqe``), each on one image given as an H x W x 3 uint8 array
or a tensor."""

from .brisque import brisque
from .lpips import lpips
from .niqe import niqe
from .piqe import piqe

__all__ = ["brisque", "lpips", "niqe", "piqe"]

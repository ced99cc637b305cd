"""BRISQUE, the Blind/Referenceless Image Spatial Quality Evaluator (Mittal, Moorthy and
Bovik, IEEE TIP 2012), as the BRISQUE Software Release computes it (``brisquescore.m``
with its SVR model trained on the whole LIVE database). Lower is better; typically 0 to
100.

1. Luma: MATLAB ``rgb2gray`` (default) or the Y of ``rgb2ycbcr`` (``channel="y"``),
   whole numbers in [0, 255].
2. At each of two scales: MSCN coefficients with the 7 x 7 Gaussian of sigma 7/6 and
   *zero* borders (the release's ``filter2(..., 'same')``); the GGD fit of the whole
   image's coefficients (alpha, sigma^2) and the AGGD fits of their products with the
   horizontal, vertical and two diagonal neighbours (circular over the whole image;
   alpha, mean, left and right variance): 18 features. Between the scales the image is
   halved with MATLAB's bicubic ``imresize`` (antialiased, not rounded).
3. As the release passes them through text files to LibSVM: the 36 features printed
   with six decimals (``%f``), scaled to [-1, 1] with the release's ranges
   (``svm-scale -r allrange``) and printed with six significant digits (``%g``); the
   score is the epsilon-SVR with RBF kernel of ``allmodel``:
   ``sum_i c_i exp(-gamma ||s_i - x||^2) - rho``.

The model ``data/brisque_live.npz`` holds ``allmodel`` and ``allrange`` (see
``data/README.md`` for their source and licence).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np
import torch

from ..matlab_bicubic import imresize  # MATLAB-exact bicubic (the one copy in the package)
from ..errors import CiaosrError
from .nss import aggd_fit, gamma_ratios, ggd_fit, luma255, mscn

__all__ = ["brisque", "brisque_features", "svr_model"]

SHIFTS = ((0, 1), (1, 0), (1, 1), (-1, 1))
MIN_SIZE = 16  # both scales need room for the 7 x 7 window


@lru_cache(maxsize=None)
def svr_model() -> dict[str, np.ndarray]:
    """The release's SVR (support vectors, coefficients, rho, gamma) and feature ranges."""
    with resources.files("ciaosr.metrics").joinpath("data/brisque_live.npz").open("rb") as f:
        with np.load(f, allow_pickle=False) as d:
            model = {k: np.array(d[k], dtype=np.float64) for k in d.files}
    for v in model.values():
        v.setflags(write=False)
    return model


def brisque_features(y: torch.Tensor) -> torch.Tensor:
    """(H, W) luma in [0, 255] -> the 36 BRISQUE features, float64."""
    x = y.to(torch.float64)[None, None]
    feats = []
    for k in (1, 2):
        c = mscn(x, border="zero")[0][0, 0]
        alpha, sigma, _ = ggd_fit(c.reshape(1, -1))
        feats += [alpha, sigma ** 2]
        for s in SHIFTS:  # one at a time: a whole image of products each
            alpha, left, right, idx = aggd_fit((c * torch.roll(c, shifts=s, dims=(0, 1))).reshape(1, -1))
            scale, mean_ratio = gamma_ratios(idx)
            feats += [alpha, (right - left) * mean_ratio * scale, left ** 2, right ** 2]
        if k == 1:
            x = imresize(x, scale=0.5)
    return torch.cat([f.reshape(-1) for f in feats])


def _printed(x: np.ndarray, fmt: str) -> np.ndarray:
    """What C's ``printf(fmt)`` and reading the text back make of each value."""
    return np.array([float(format(v, fmt)) for v in x])


def brisque(img, *, channel: str = "gray", device=None) -> float:
    """BRISQUE of one image (NumPy H x W x 3 uint8, or a tensor as the package takes them).

    Features on the tensor's device (or ``device``) in float64; the SVR on the CPU.
    """
    y = luma255(img, channel, device)[0, 0]
    if min(y.shape) < MIN_SIZE:
        raise CiaosrError(f"BRISQUE needs an image of at least {MIN_SIZE}x{MIN_SIZE} pixels, "
                          f"got {y.shape[1]}x{y.shape[0]} (width x height)")
    feats = brisque_features(y).cpu().numpy()
    m = svr_model()
    feats = _printed(feats, "f")  # the release writes the features with %f
    lo, hi = m["range_min"], m["range_max"]
    scaled = -1.0 + 2.0 * (feats - lo) / (hi - lo)
    scaled = _printed(scaled, "g")  # svm-scale writes them with %g
    d2 = ((m["support_vectors"] - scaled[None, :]) ** 2).sum(axis=1)
    return float(np.dot(m["coefficients"], np.exp(-m["gamma"] * d2)) - m["rho"])

"""NIQE, the Naturalness Image Quality Evaluator (Mittal, Soundararajan and Bovik,
IEEE Signal Processing Letters 2013), as MATLAB's ``niqe`` computes it with its default
pristine model. Lower is better.

1. Luma: the Y of MATLAB's ``rgb2ycbcr`` (default: what BasicSR's ``calculate_niqe``
   and the super-resolution toolkits built on it use, and what the MATLAB figure
   BasicSR quotes was computed on) or, with ``channel="gray"``, MATLAB's ``rgb2gray``
   (what MATLAB's built-in ``niqe`` applies to RGB input); rounded to whole numbers.
   ``crop_border`` pixels are dropped at every edge.
2. The image is cut at the bottom and right to whole 96 x 96 blocks.
3. At each of two scales: MSCN coefficients (7 x 7 Gaussian, sigma 7/6, replicated
   borders); per block (96 x 96, then 48 x 48) 18 features: the AGGD fit of the
   coefficients (alpha, mean of the two betas) and of their products with the
   horizontal, vertical and two diagonal neighbours (circular within the block; alpha,
   mean, left beta, right beta). Between the scales the image is halved with MATLAB's
   bicubic ``imresize`` (antialiased, not rounded).
4. The 36 features are averaged over the blocks (ignoring NaN) and their covariance is
   taken over the blocks without NaN; the score is the Mahalanobis-like distance
   ``sqrt((mu_p - mu) pinv((S_p + S) / 2) (mu_p - mu)')`` to the pristine model
   (``mu_p``, ``S_p``).

The pristine model ``data/niqe_pristine.npz`` is ``mu_prisparam`` / ``cov_prisparam`` of
the NIQE release (see ``data/README.md`` for its source and licence).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np
import torch

from ..matlab_bicubic import imresize  # MATLAB-exact bicubic (the one copy in the package)
from ..errors import CiaosrError
from .nss import aggd_fit, gamma_ratios, luma255, mscn

__all__ = ["niqe", "niqe_features", "pristine_model", "BLOCK"]

BLOCK = 96
# (row, column) neighbour shifts of the pairwise products, as the reference code's circshift.
SHIFTS = ((0, 1), (1, 0), (1, 1), (-1, 1))


@lru_cache(maxsize=None)
def pristine_model() -> tuple[np.ndarray, np.ndarray]:
    """(mu_prisparam (36,), cov_prisparam (36, 36)) of the default NIQE model."""
    with resources.files("ciaosr.metrics").joinpath("data/niqe_pristine.npz").open("rb") as f:
        with np.load(f, allow_pickle=False) as d:
            mu = np.array(d["mu_prisparam"], dtype=np.float64).reshape(36)
            cov = np.array(d["cov_prisparam"], dtype=np.float64).reshape(36, 36)
    mu.setflags(write=False)
    cov.setflags(write=False)
    return mu, cov


def _blocks(x: torch.Tensor, size: int) -> torch.Tensor:
    """(H, W) with H, W multiples of ``size`` -> (N, size, size), row-major block order."""
    h, w = x.shape
    return x.reshape(h // size, size, w // size, size).permute(0, 2, 1, 3).reshape(-1, size, size)


def _block_features(coeffs: torch.Tensor) -> torch.Tensor:
    """(N, s, s) MSCN blocks -> (N, 18) NIQE features."""
    n = coeffs.shape[0]
    alpha, left, right, idx = aggd_fit(coeffs.reshape(n, -1))
    scale, _ = gamma_ratios(idx)
    feats = [alpha, (left * scale + right * scale) / 2]
    for dy, dx in SHIFTS:
        shifted = torch.roll(coeffs, shifts=(dy, dx), dims=(1, 2))
        alpha, left, right, idx = aggd_fit((coeffs * shifted).reshape(n, -1))
        scale, mean_ratio = gamma_ratios(idx)
        bl, br = left * scale, right * scale
        feats += [alpha, (br - bl) * mean_ratio, bl, br]
    return torch.stack(feats, dim=1)


def niqe_features(y: torch.Tensor) -> torch.Tensor:
    """(H, W) luma in [0, 255] (a multiple of 96 each way) -> (N, 36) block features."""
    x = y.to(torch.float64)[None, None]
    per_scale = []
    for k in (1, 2):
        coeffs, _ = mscn(x)
        per_scale.append(_block_features(_blocks(coeffs[0, 0], BLOCK // k)))
        if k == 1:
            x = imresize(x, scale=0.5)
    return torch.cat(per_scale, dim=1)


def niqe(img, *, crop_border: int = 0, channel: str = "y", device=None) -> float:
    """NIQE of one image (NumPy H x W x 3 uint8, or a tensor as the package takes them).

    Needs at least 96 x 96 pixels after ``crop_border``. Runs on the tensor's device
    (or ``device``), in float64.
    """
    y = luma255(img, channel, device)[0, 0]
    if crop_border:
        c = int(crop_border)
        y = y[c:-c, c:-c]
    h, w = y.shape
    if h < BLOCK or w < BLOCK:
        raise CiaosrError(f"NIQE needs an image of at least {BLOCK}x{BLOCK} pixels, got {w}x{h} (width x height)")
    y = y[: h // BLOCK * BLOCK, : w // BLOCK * BLOCK]
    feats = niqe_features(y)
    mu = torch.nanmean(feats, dim=0)
    complete = feats[~torch.isnan(feats).any(dim=1)]
    if complete.shape[0] > 1:
        cov = torch.cov(complete.T)
    else:  # MATLAB's nancov of one observation is zero; of none, NaN
        cov = torch.full((36, 36), 0.0 if complete.shape[0] == 1 else float("nan"),
                         dtype=torch.float64, device=feats.device)
    if torch.isnan(cov).any() or torch.isnan(mu).any():
        return float("nan")
    mu_p, cov_p = (torch.from_numpy(a.copy()).to(feats.device) for a in pristine_model())
    d = (mu_p - mu)[None]
    q = d @ torch.linalg.pinv((cov_p + cov) / 2) @ d.T
    return float(torch.sqrt(q).item())

"""Natural-scene statistics shared by the no-reference metrics (NIQE, BRISQUE, PIQE).

* ``luma255``: one image (NumPy HxWx3 / HxW, or a tensor (3, H, W) / (1, 3, H, W) /
  (H, W); uint8, uint16 or float in [0, 1]) -> its luma as whole numbers in [0, 255],
  float64, shape (1, 1, H, W). ``channel="gray"`` is MATLAB's ``rgb2gray`` (what
  MATLAB's ``niqe``, ``brisque`` and ``piqe`` use), ``channel="y"`` the Y of MATLAB's
  ``rgb2ycbcr`` in [16, 235] (what BasicSR's ``calculate_niqe`` uses). Either is
  rounded to whole numbers, as MATLAB's ``round(255 * im2double(gray))`` does.
* ``mscn``: mean-subtracted contrast-normalised coefficients ``(I - mu) / (sigma + 1)``
  with a 7 x 7 Gaussian window of sigma 7/6 and replicated borders (MATLAB
  ``imfilter(..., 'replicate')`` / ``imgaussfilt(..., 'Padding', 'replicate')``).
* ``aggd_fit`` / ``ggd_fit``: the moment-matching fits of (asymmetric) generalised
  Gaussian distributions over the grid ``alpha = 0.2:0.001:10`` of the reference code,
  many sample sets at once.

Everything is float64 on the image's device.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from .psnr import matlab_gray, matlab_y
from .ssim import filter_valid, gaussian_window

__all__ = ["CHANNELS", "luma255", "mscn", "aggd_fit", "ggd_fit", "to_rgb01"]

#: Which luma a no-reference metric scores: MATLAB ``rgb2gray`` or the Y of ``rgb2ycbcr``.
CHANNELS = ("gray", "y")

MSCN_WINDOW = 7
MSCN_SIGMA = 7.0 / 6.0
#: |I - mu| below this is 0 (rounding noise, see ``mscn``).
ZERO_BELOW = 1e-8


def to_rgb01(img, device=None) -> torch.Tensor:
    """One image -> float64 tensor (C, H, W) in [0, 1], C = 1 or 3, on ``device``
    (default: the tensor's own device, the CPU for NumPy)."""
    if isinstance(img, np.ndarray):
        arr = img
        if arr.ndim == 3 and arr.shape[-1] in (1, 3):
            arr = arr.transpose(2, 0, 1)
        elif arr.ndim == 2:
            arr = arr[None]
        else:
            raise ValueError(f"expected an image H x W x 3 or H x W, got shape {img.shape}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    elif isinstance(img, torch.Tensor):
        t = img.detach()
        if t.dim() == 4 and t.shape[0] == 1:
            t = t[0]
        if t.dim() == 2:
            t = t[None]
        if t.dim() != 3 or t.shape[0] not in (1, 3):
            raise ValueError(f"expected an image (3, H, W), (1, 3, H, W) or (H, W), got shape {tuple(img.shape)}")
    else:
        raise TypeError(f"expected a NumPy array or a tensor, got {type(img).__name__}")
    if t.dtype == torch.uint8:
        scale = 255.0
    elif t.dtype == torch.uint16:
        scale = 65535.0
    elif torch.is_floating_point(t):
        scale = 1.0
    else:
        raise TypeError(f"expected uint8, uint16 or floating-point pixels, got {t.dtype}")
    t = t.to(device=device if device is not None else t.device, dtype=torch.float64)
    return t / scale if scale != 1.0 else t


def luma255(img, channel: str = "gray", device=None) -> torch.Tensor:
    """The luma the no-reference metrics score: whole numbers in [0, 255], (1, 1, H, W)."""
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {', '.join(CHANNELS)}, got {channel!r}")
    x = to_rgb01(img, device)[None]
    if x.shape[1] == 3:
        x = matlab_gray(x) if channel == "gray" else matlab_y(x) / 255.0
    return torch.round(255.0 * x)


def mscn(x: torch.Tensor, border: str = "replicate") -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 1, H, W) -> (MSCN coefficients, local sigma), both (B, 1, H, W), float64.

    ``border``: ``"replicate"`` (NIQE, PIQE) or ``"zero"`` (BRISQUE's ``filter2``).
    Where ``|I - mu|`` is below ``ZERO_BELOW`` the coefficient is exactly 0, as exact
    arithmetic gives it (a flat window, or differences that cancel by symmetry): for
    whole-number luma a true difference is far larger, and a computed one that small is
    rounding noise whose sign depends on the order of the filter's sums (so on the
    implementation and the device), which NIQE's and BRISQUE's separate fits of the
    negative and positive values would count.
    """
    x = x.to(torch.float64)
    r = MSCN_WINDOW // 2
    g = gaussian_window(MSCN_WINDOW, MSCN_SIGMA, device=x.device)
    mode = {"replicate": "replicate", "zero": "constant"}[border]
    both = torch.cat([x, x * x], dim=1)
    mu, mu2 = filter_valid(F.pad(both, (r, r, r, r), mode=mode), g).split(1, dim=1)
    sigma = torch.sqrt(torch.abs(mu2 - mu * mu))
    diff = x - mu
    return torch.where(diff.abs() < ZERO_BELOW, torch.zeros_like(diff), diff / (sigma + 1.0)), sigma


@lru_cache(maxsize=None)
def _tables():
    """The alpha grid 0.2:0.001:10 and the gamma-function ratios the fits use."""
    gam = 0.2 + 0.001 * np.arange(9801, dtype=np.float64)
    g1 = np.array([math.gamma(1.0 / a) for a in gam])
    g2 = np.array([math.gamma(2.0 / a) for a in gam])
    g3 = np.array([math.gamma(3.0 / a) for a in gam])
    r_aggd = g2 * g2 / (g1 * g3)   # increasing in alpha
    r_ggd = g1 * g3 / (g2 * g2)    # decreasing in alpha
    if not (np.all(np.diff(r_aggd) > 0) and np.all(np.diff(r_ggd) < 0)):  # pragma: no cover
        raise RuntimeError("the GGD moment ratios are not monotonic on the alpha grid")
    return gam, g1, g2, g3, r_aggd, r_ggd


def _nearest(table: np.ndarray, x: torch.Tensor, squared: bool) -> torch.Tensor:
    """Index of the grid value closest to each ``x`` (the first one on a tie, as
    ``argmin`` over the whole grid gives); NaN -> 0, as MATLAB's ``min`` and NumPy's
    ``argmin`` give. ``table`` is strictly monotonic."""
    increasing = table[1] > table[0]
    t = torch.from_numpy(table if increasing else table[::-1].copy()).to(x.device)
    n = t.numel()
    xs = torch.nan_to_num(x, nan=0.0)
    hi = torch.searchsorted(t, xs.contiguous()).clamp(1, n - 1)
    lo = hi - 1
    if squared:
        d_lo, d_hi = (t[lo] - xs) ** 2, (t[hi] - xs) ** 2
    else:
        d_lo, d_hi = torch.abs(xs - t[lo]), torch.abs(xs - t[hi])
    if increasing:
        idx = torch.where(d_lo <= d_hi, lo, hi)
    else:  # grid index = n - 1 - sorted position; the first grid index is the larger position
        idx = n - 1 - torch.where(d_hi <= d_lo, hi, lo)
    return torch.where(torch.isnan(x), torch.zeros_like(idx), idx)


def aggd_fit(v: torch.Tensor):
    """Asymmetric GGD fit of each row of ``v`` (N, M).

    Returns ``(alpha, left_std, right_std, index)``, each (N,): the shape parameter on
    the grid, the root mean squares of the negative and of the positive values (NaN when
    there are none), and the grid index of alpha.
    """
    v = v.to(torch.float64)
    neg, pos = v < 0, v > 0
    sq = v * v
    left = torch.sqrt((sq * neg).sum(1) / neg.sum(1))
    right = torch.sqrt((sq * pos).sum(1) / pos.sum(1))
    gh = left / right
    rhat = v.abs().mean(1) ** 2 / sq.mean(1)
    rnorm = rhat * (gh ** 3 + 1) * (gh + 1) / (gh ** 2 + 1) ** 2
    gam, *_, r_aggd, _ = _tables()
    idx = _nearest(r_aggd, rnorm, squared=True)
    alpha = torch.from_numpy(gam).to(v.device)[idx]
    return alpha, left, right, idx


def ggd_fit(v: torch.Tensor):
    """Symmetric GGD fit of each row of ``v`` (N, M): ``(alpha, sigma, index)``, sigma
    the root mean square."""
    v = v.to(torch.float64)
    sigma_sq = (v * v).mean(1)
    e = v.abs().mean(1)
    rho = sigma_sq / (e * e)
    gam, *_, r_ggd = _tables()
    idx = _nearest(r_ggd, rho, squared=False)
    alpha = torch.from_numpy(gam).to(v.device)[idx]
    return alpha, torch.sqrt(sigma_sq), idx


def gamma_ratios(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For grid indices ``idx``: ``sqrt(G(1/a) / G(3/a))`` and ``G(2/a) / G(1/a)``."""
    _, g1, g2, g3, _, _ = _tables()
    scale = torch.from_numpy(np.sqrt(g1 / g3)).to(idx.device)[idx]
    mean = torch.from_numpy(g2 / g1).to(idx.device)[idx]
    return scale, mean

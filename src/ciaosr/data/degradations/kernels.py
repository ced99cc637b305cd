"""Blur kernels, built as one tensor for a whole batch (one kernel per sample).

The families of Real-ESRGAN (Wang et al., 2021, Sec. 3.1 and its released settings):
with the rotated covariance ``Sigma = R(theta) diag(sigma_x^2, sigma_y^2) R(theta)^T``
and ``q(x) = x^T Sigma^-1 x`` over the pixel offsets ``x = (col, row)`` of the kernel,

* ``iso`` / ``aniso``: Gaussian ``exp(-q / 2)`` (iso: ``sigma_y = sigma_x``, ``theta = 0``);
* ``generalized_iso`` / ``generalized_aniso``: ``exp(-q^beta / 2)``;
* ``plateau_iso`` / ``plateau_aniso``: ``1 / (1 + q^beta)``;
* ``sinc``: the circularly symmetric low-pass ``omega J1(omega r) / (2 pi r)`` (its limit
  ``omega^2 / (4 pi)`` at ``r = 0``), cut-off ``omega`` in radians per pixel.

Each kernel is computed on its own odd size (``k x k``), normalised to sum to 1 there,
and zero-padded to the batch's common size, as Real-ESRGAN pads its kernels to 21.
Every family is point-symmetric, so correlation and convolution with it are the same.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

#: Kernel families, in the order of the probabilities in the settings.
KERNEL_TYPES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso", "sinc")
_GAUSSIAN, _GENERALIZED, _PLATEAU, _SINC = 0, 1, 2, 3
_FAMILY = (_GAUSSIAN, _GAUSSIAN, _GENERALIZED, _GENERALIZED, _PLATEAU, _PLATEAU, _SINC)
_ISOTROPIC = (True, False, True, False, True, False, True)


def _offsets(size: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column offsets from the centre of a ``size x size`` kernel, (1, k, 1) and (1, 1, k)."""
    ax = torch.arange(size, device=device, dtype=torch.float32) - size // 2
    return ax.view(1, size, 1), ax.view(1, 1, size)


def _support(sizes: torch.Tensor, size: int) -> torch.Tensor:
    """(n, size, size) mask of the centred ``sizes[i] x sizes[i]`` square of each kernel."""
    rows, cols = _offsets(size, sizes.device)
    half = (sizes.view(-1, 1, 1) // 2).float()
    return (rows.abs() <= half) & (cols.abs() <= half)


def _normalise(values: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    values = torch.where(support, values, torch.zeros_like(values))
    return values / values.sum(dim=(-2, -1), keepdim=True)


def quadratic_form(sigma_x: torch.Tensor, sigma_y: torch.Tensor, theta: torch.Tensor, size: int) -> torch.Tensor:
    """``q = x^T Sigma^-1 x`` at every offset of a ``size x size`` kernel, (n, size, size)."""
    rows, cols = _offsets(size, sigma_x.device)
    c, s = torch.cos(theta).view(-1, 1, 1), torch.sin(theta).view(-1, 1, 1)
    u = c * cols + s * rows  # coordinates along the covariance's principal axes
    v = -s * cols + c * rows
    return (u / sigma_x.view(-1, 1, 1)) ** 2 + (v / sigma_y.view(-1, 1, 1)) ** 2


def gaussian_kernels(sigma_x: torch.Tensor, sigma_y: torch.Tensor, theta: torch.Tensor, sizes: torch.Tensor,
                     size: int) -> torch.Tensor:
    """Anisotropic Gaussian kernels (n, size, size), each on its ``sizes[i]`` square."""
    q = quadratic_form(sigma_x, sigma_y, theta, size)
    return _normalise(torch.exp(-0.5 * q), _support(sizes, size))


def sinc_kernels(omega: torch.Tensor, sizes: torch.Tensor, size: int) -> torch.Tensor:
    """Circular low-pass (2-D sinc) kernels (n, size, size) with cut-offs ``omega``."""
    rows, cols = _offsets(size, omega.device)
    r = torch.sqrt(rows ** 2 + cols ** 2)
    w = omega.view(-1, 1, 1)
    safe_r = torch.where(r > 0, r, torch.ones_like(r))
    values = torch.where(r > 0, w * torch.special.bessel_j1(w * safe_r) / (2 * math.pi * safe_r),
                         w ** 2 / (4 * math.pi))
    return _normalise(values, _support(sizes, size))


def mixed_kernels(types: torch.Tensor, sizes: torch.Tensor, sigma_x: torch.Tensor, sigma_y: torch.Tensor,
                  theta: torch.Tensor, beta: torch.Tensor, omega: torch.Tensor, size: int) -> torch.Tensor:
    """One kernel per sample of the family ``KERNEL_TYPES[types[i]]`` (n, size, size).

    Isotropic families use ``sigma_x`` alone; ``beta`` is read by the generalised and
    plateau families, ``omega`` by ``sinc``."""
    fam = torch.tensor(_FAMILY, device=types.device)[types].view(-1, 1, 1)
    iso = torch.tensor(_ISOTROPIC, device=types.device)[types]
    sigma_y = torch.where(iso, sigma_x, sigma_y)
    theta = torch.where(iso, torch.zeros_like(theta), theta)
    q = quadratic_form(sigma_x, sigma_y, theta, size)
    qb = q.pow(beta.view(-1, 1, 1))
    values = torch.where(fam == _GAUSSIAN, torch.exp(-0.5 * q),
                         torch.where(fam == _GENERALIZED, torch.exp(-0.5 * qb), 1.0 / (1.0 + qb)))
    kernels = _normalise(values, _support(sizes, size))
    is_sinc = fam.view(-1) == _SINC
    if bool(is_sinc.any()):
        kernels = torch.where(is_sinc.view(-1, 1, 1), sinc_kernels(omega, sizes, size), kernels)
    return kernels


def pulse(n: int, size: int, device=None) -> torch.Tensor:
    """(n, size, size) identity kernels (1 at the centre)."""
    k = torch.zeros(n, size, size, device=device)
    k[:, size // 2, size // 2] = 1.0
    return k


def random_mixed_kernels(draws, n: int, kernel_prob: dict, sizes: Sequence[int], sigma: Sequence[float],
                         rotation: Sequence[float], betag: Sequence[float], betap: Sequence[float]):
    """``n`` kernels drawn as Real-ESRGAN draws its first- and second-order blur, every
    value per sample: the family by ``kernel_prob`` (a probability per name of
    ``KERNEL_TYPES``), the size from ``sizes``, ``sigma_x`` and ``sigma_y`` from
    ``sigma``, ``theta`` from ``rotation``; ``beta`` from [lo, 1) or [1, hi) with equal
    chance (``betag`` for the generalised, ``betap`` for the plateau family); the sinc
    cut-off from [pi/3, pi] for sizes below 13, else [pi/5, pi].

    Returns ``(kernels (n, K, K), params)``, K the largest size, ``params`` a dict of
    per-sample tensors (``type`` indices into ``KERNEL_TYPES``, ``size``, ``sigma_x``,
    ``sigma_y``, ``theta``, ``beta``, ``omega``)."""
    types = draws.choice([kernel_prob[name] for name in KERNEL_TYPES], n)
    size_list = list(sizes)
    k_sizes = torch.tensor(size_list, device=draws.device)[draws.choice([1.0] * len(size_list), n)]
    sigma_x = draws.uniform(sigma[0], sigma[1], n)
    sigma_y = draws.uniform(sigma[0], sigma[1], n)
    theta = draws.uniform(rotation[0], rotation[1], n)
    below_one = draws.bernoulli(0.5, n)
    u = draws.uniform(0.0, 1.0, n)
    fam = torch.tensor(_FAMILY, device=draws.device)[types]
    lo = torch.where(fam == _PLATEAU, betap[0], betag[0])
    hi = torch.where(fam == _PLATEAU, betap[1], betag[1])
    beta = torch.where(below_one, lo + (1 - lo) * u, 1 + (hi - 1) * u)
    w = draws.uniform(0.0, 1.0, n)
    omega_lo = torch.where(k_sizes < 13, math.pi / 3, math.pi / 5)
    omega = omega_lo + (math.pi - omega_lo) * w
    iso = torch.tensor(_ISOTROPIC, device=draws.device)[types]
    sigma_y = torch.where(iso, sigma_x, sigma_y)
    theta = torch.where(iso, torch.zeros_like(theta), theta)
    kernels = mixed_kernels(types, k_sizes, sigma_x, sigma_y, theta, beta, omega, max(size_list))
    return kernels, {"type": types, "size": k_sizes, "sigma_x": sigma_x, "sigma_y": sigma_y, "theta": theta,
                     "beta": beta, "omega": omega}


def random_sinc_kernels(draws, n: int, prob: float, sizes: Sequence[int], omega: Sequence[float], size: int):
    """Real-ESRGAN's final sinc filter: per sample, with probability ``prob`` a sinc of a
    size from ``sizes`` and cut-off from ``omega``, else the identity.
    Returns ``(kernels (n, size, size), applied (n,) bool, params)``."""
    applied = draws.bernoulli(prob, n)
    size_list = list(sizes)
    k_sizes = torch.tensor(size_list, device=draws.device)[draws.choice([1.0] * len(size_list), n)]
    w = draws.uniform(omega[0], omega[1], n)
    kernels = torch.where(applied.view(-1, 1, 1), sinc_kernels(w, k_sizes, size), pulse(n, size, draws.device))
    return kernels, applied, {"size": k_sizes, "omega": w}

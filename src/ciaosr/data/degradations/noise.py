"""Additive noise for a batch, with per-sample levels.

Gaussian noise is written as standard normal values ``z`` (one per channel) mixed by a
3x3 matrix per sample, ``noise_c = sum_d z_d M[d, c]``: ``M = sigma I`` is colour noise
(channels independent), a first row of ``sigma`` and zeros below is grey noise (one
value for all channels), and a general ``M`` gives channel-correlated noise with
covariance ``M^T M`` (BSRGAN's third kind). So one batch may mix all three.

Poisson (shot) noise follows Real-ESRGAN: the image is taken to 8-bit levels, ``vals``
is the number of distinct levels in the sample rounded up to a power of two, the noisy
image is ``Poisson(img * vals) / vals``, and the noise (noisy minus image) is scaled per
sample. Grey Poisson noise is computed on the luma (ITU-R BT.601 weights) and added to
all three channels.

Levels are on the 0-255 scale (``sigma``), as the papers give them.
"""

from __future__ import annotations

import torch

#: ITU-R BT.601 luma weights (R, G, B).
LUMA = (0.299, 0.587, 0.114)


def colour_matrices(sigma: torch.Tensor) -> torch.Tensor:
    """(n, 3, 3) mixing matrices of independent colour noise of std ``sigma / 255``."""
    eye = torch.eye(3, device=sigma.device, dtype=torch.float32)
    return eye * (sigma.float() / 255.0).view(-1, 1, 1)


def grey_matrices(sigma: torch.Tensor) -> torch.Tensor:
    """(n, 3, 3) mixing matrices of grey noise (the same value in every channel)."""
    m = torch.zeros(sigma.shape[0], 3, 3, device=sigma.device, dtype=torch.float32)
    m[:, 0, :] = (sigma.float() / 255.0).view(-1, 1)
    return m


def correlated_matrices(cov: torch.Tensor) -> torch.Tensor:
    """(n, 3, 3) mixing matrices whose noise has covariance ``cov`` (n, 3, 3) on the
    [0, 1] scale, or the absolute-eigenvalue version of it when it is not positive
    semi-definite: from the SVD ``cov = U S V^T``, ``M = sqrt(S) V^T`` (numpy's
    ``multivariate_normal`` makes its samples the same way)."""
    _, s, vh = torch.linalg.svd(cov.double().cpu())
    return (s.sqrt().unsqueeze(-1) * vh).float().to(cov.device)


def add_mixed_gaussian(x: torch.Tensor, mix: torch.Tensor, draws) -> torch.Tensor:
    """``x + noise``, clipped to [0, 1]; ``mix`` (n, 3, 3) per sample (see the module)."""
    z = draws.normal(x.shape)
    noise = torch.einsum("ndhw,ndc->nchw", z, mix.to(x.dtype))
    return (x + noise).clamp_(0, 1)


def _levels(img: torch.Tensor) -> torch.Tensor:
    """Per sample, the number of distinct 8-bit levels of ``img`` (n, C, H, W) already
    on 8-bit steps, rounded up to a power of two: (n, 1, 1, 1)."""
    n = img.shape[0]
    q = (img * 255.0).round().long().view(n, -1)
    present = torch.zeros(n, 256, device=img.device).scatter_(1, q, 1.0)
    count = present.sum(dim=1).clamp(min=1)
    return torch.exp2(torch.ceil(torch.log2(count))).view(n, 1, 1, 1)


def poisson_noise(img: torch.Tensor, draws) -> torch.Tensor:
    """The Poisson noise of ``img`` (n, C, H, W) in [0, 1], at unit scale."""
    img = (img * 255.0).round().clamp(0, 255) / 255.0
    vals = _levels(img)
    return draws.poisson(img * vals) / vals - img


def add_poisson(x: torch.Tensor, scale: torch.Tensor, grey: torch.Tensor, draws) -> torch.Tensor:
    """``x + scale * noise``, clipped to [0, 1]: Poisson noise per sample, grey where
    ``grey`` is true (computed only where some sample needs it)."""
    n = x.shape[0]
    noise = poisson_noise(x, draws)
    if bool(grey.any()):
        luma = torch.tensor(LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        grey_noise = poisson_noise((x * luma).sum(dim=1, keepdim=True), draws).expand_as(x)
        noise = torch.where(grey.view(n, 1, 1, 1), grey_noise, noise)
    return (x + noise * scale.to(x.dtype).view(n, 1, 1, 1)).clamp_(0, 1)

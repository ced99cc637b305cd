"""The two degradation pipelines, run on a whole batch on its own device.

``degrade(hr, scales, settings, generator)`` turns a batch of high-resolution crops
into their low-resolution inputs, each of the size its own scale gives. Every random
value comes from ``generator`` (see ``draws``), so a seed fixes the batch.

The batch is kept as groups of samples of one size (``Samples``). It starts as one
group; a resize to per-sample sizes (the final one, to ``round(H / s)``, or BSRGAN's)
splits it, samples of equal size staying together. Each stage runs once per group with
the group's rows of the per-sample values, so up to the final resize a Real-ESRGAN
batch is one tensor: one grouped convolution for all the kernels, one JPEG pass for all
the qualities, one noise field.

Which values are drawn once per batch and which per sample follows Real-ESRGAN's
training code (``realesrgan_model.feed_data``; its kernels come per sample from the
dataset); docs/real-world.md lists them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from ...errors import CiaosrError
from ...geometry import downscaled_size
from .draws import Draws
from .filtering import filter2d
from .jpeg import jpeg_compress
from .kernels import KERNEL_TYPES, gaussian_kernels, random_mixed_kernels, random_sinc_kernels
from .noise import add_mixed_gaussian, add_poisson, colour_matrices, correlated_matrices, grey_matrices
from .resize import resize
from .settings import BSRGAN_NOISE_TYPES, DegradationSettings


# --------------------------------------------------------------------------------------
# The batch as groups of equal-size samples, and the record of what was drawn
# --------------------------------------------------------------------------------------
class Samples:
    """The images being degraded: groups ``(rows, x)`` of the samples ``rows`` (their
    indices in the batch) stacked in ``x`` (len(rows), C, h, w)."""

    def __init__(self, x: torch.Tensor):
        self.n = x.shape[0]
        self.device = x.device
        self.groups: list[tuple[list[int], torch.Tensor]] = [(list(range(self.n)), x)]

    def rows(self, rows: list[int]) -> torch.Tensor:
        return torch.as_tensor(rows, device=self.device)

    def apply(self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        """``x <- fn(x, rows)`` for every group (``rows`` a long tensor of indices, for
        picking the group's per-sample values)."""
        self.groups = [(rows, fn(x, self.rows(rows))) for rows, x in self.groups]

    def filter(self, kernels: torch.Tensor) -> None:
        """Each sample correlated with its kernel (``kernels`` (n, k, k), per sample)."""
        self.apply(lambda x, rows: filter2d(x, kernels[rows]))

    def clamp(self) -> None:
        self.apply(lambda x, rows: x.clamp(0, 1))

    def sizes(self) -> list[tuple[int, int]]:
        out: list = [None] * self.n
        for rows, x in self.groups:
            for r in rows:
                out[r] = tuple(x.shape[-2:])
        return out

    def resize(self, sizes: Sequence[tuple[int, int]], mode: str) -> None:
        """Sample i to ``sizes[i]``; groups split where their samples' sizes differ."""
        groups = []
        for rows, x in self.groups:
            parts: dict[tuple[int, int], list[int]] = {}
            for j, r in enumerate(rows):
                parts.setdefault(tuple(sizes[r]), []).append(j)
            for size, js in parts.items():
                sub = x if len(js) == len(rows) else x[self.rows(js)]
                groups.append(([rows[j] for j in js], resize(sub, size, mode)))
        self.groups = groups

    def images(self) -> list[torch.Tensor]:
        out: list = [None] * self.n
        for rows, x in self.groups:
            for j, r in enumerate(rows):
                out[r] = x[j]
        return out


class Record:
    """What was drawn for each sample, as a list of steps (dicts); a no-op unless enabled."""

    def __init__(self, n: int, enabled: bool):
        self.n = n
        self.steps: list[list[dict]] | None = [[] for _ in range(n)] if enabled else None

    @property
    def enabled(self) -> bool:
        return self.steps is not None

    def add(self, op: str, rows: Sequence[int] | torch.Tensor | None = None, **fields) -> None:
        """One step for the samples ``rows`` (default all; a bool tensor selects). A
        tensor or list field holds one value per sample of the batch; anything else is
        the batch's one value."""
        if self.steps is None:
            return
        if rows is None:
            rows = range(self.n)
        elif isinstance(rows, torch.Tensor):
            rows = torch.nonzero(rows).view(-1).tolist() if rows.dtype == torch.bool else rows.tolist()
        per_sample = {k: (v.tolist() if isinstance(v, torch.Tensor) else v) for k, v in fields.items()
                      if isinstance(v, (torch.Tensor, list))}
        for i in rows:
            step = {"op": op}
            for k, v in fields.items():
                step[k] = per_sample[k][i] if k in per_sample else v
            self.steps[i].append(step)

    def add_each(self, rows: Sequence[int], steps: Sequence[dict]) -> None:
        if self.steps is not None:
            for i, step in zip(rows, steps):
                self.steps[i].append(step)


@dataclass
class Context:
    settings: DegradationSettings
    draws: Draws
    record: Record
    scales: list[tuple[float, float]]  # (s_h, s_w) per sample
    final_sizes: list[tuple[int, int]]  # (h, w) per sample

    @property
    def n(self) -> int:
        return len(self.scales)


# --------------------------------------------------------------------------------------
# Stages shared by both pipelines
# --------------------------------------------------------------------------------------
def _pick(ctx: Context, options: Sequence[str]) -> str:
    return options[ctx.draws.choice([1.0] * len(options))]


def _resize_to(samples: Samples, ctx: Context, sizes, mode: str, stage, **fields) -> None:
    samples.resize(sizes, mode)
    ctx.record.add("resize", stage=stage, mode=mode, size=[list(s) for s in sizes], **fields)


def _jpeg(samples: Samples, ctx: Context, quality: torch.Tensor, stage, applied: torch.Tensor | None = None) -> None:
    """JPEG per sample at ``quality`` (n,), where ``applied`` (n,) is true (default all)."""
    def compress(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        x = x.clamp(0, 1)
        if applied is None:
            return jpeg_compress(x, quality[rows])
        sel = applied[rows]
        if not bool(sel.any()):
            return x
        x = x.clone()
        x[sel] = jpeg_compress(x[sel], quality[rows][sel])
        return x

    samples.apply(compress)
    ctx.record.add("jpeg", applied, stage=stage, quality=quality)


def _kernel_step(p: dict, i: int, stage) -> dict:
    kind = KERNEL_TYPES[p["type"][i]]
    step = {"op": "blur", "stage": stage, "kernel": kind, "kernel_size": p["size"][i]}
    if kind == "sinc":
        step["omega"] = p["omega"][i]
        return step
    step["sigma"] = [p["sigma_x"][i], p["sigma_y"][i]]
    step["theta"] = p["theta"][i]
    if kind.startswith(("generalized", "plateau")):
        step["beta"] = p["beta"][i]
    return step


# --------------------------------------------------------------------------------------
# Real-ESRGAN's second-order pipeline, with the released CiaoSR's final step
# --------------------------------------------------------------------------------------
def _re_blur(samples: Samples, ctx: Context, suffix: str, stage: int) -> None:
    s = ctx.settings
    kernels, p = random_mixed_kernels(ctx.draws, ctx.n, s[f"kernel_prob{suffix}"], s[f"kernel_sizes{suffix}"],
                                      s[f"blur_sigma{suffix}"], s[f"rotation_range{suffix}"],
                                      s[f"betag_range{suffix}"], s[f"betap_range{suffix}"])
    samples.filter(kernels)
    if ctx.record.enabled:
        p = {k: v.tolist() for k, v in p.items()}
        ctx.record.add_each(range(ctx.n), [_kernel_step(p, i, stage) for i in range(ctx.n)])


def _re_resize(samples: Samples, ctx: Context, suffix: str, stage: int) -> None:
    """Up, down or keep (per batch), a factor from the range, one mode: relative to the
    current size (as the released CiaoSR's mmediting pipeline)."""
    s, d = ctx.settings, ctx.draws
    lo, hi = s[f"resize_range{suffix}"]
    kind = d.choice(s[f"resize_prob{suffix}"])
    factor = d.uniform(1.0, hi) if kind == 0 else d.uniform(lo, 1.0) if kind == 1 else 1.0
    mode = _pick(ctx, s[f"resize_modes{suffix}"])
    sizes = [(max(1, round(h * factor)), max(1, round(w * factor))) for h, w in samples.sizes()]
    _resize_to(samples, ctx, sizes, mode, stage, factor=factor)


def _re_noise(samples: Samples, ctx: Context, suffix: str, stage: int) -> None:
    """Gaussian or Poisson (per batch); level and grey-or-colour per sample; clipped."""
    s, d, n = ctx.settings, ctx.draws, ctx.n
    gaussian = d.bernoulli(s[f"gaussian_noise_prob{suffix}"])
    grey = d.bernoulli(s[f"gray_noise_prob{suffix}"], n)
    if gaussian:
        sigma = d.uniform(*s[f"noise_range{suffix}"], n)
        mix = torch.where(grey.view(-1, 1, 1), grey_matrices(sigma), colour_matrices(sigma))
        samples.apply(lambda x, rows: add_mixed_gaussian(x, mix[rows], d))
        ctx.record.add("noise", stage=stage, type="gaussian", sigma=sigma, grey=grey)
    else:
        scale = d.uniform(*s[f"poisson_scale_range{suffix}"], n)
        samples.apply(lambda x, rows: add_poisson(x, scale[rows], grey[rows], d))
        ctx.record.add("noise", stage=stage, type="poisson", scale=scale, grey=grey)


def _re_final_resize_and_sinc(samples: Samples, ctx: Context) -> None:
    s, d = ctx.settings, ctx.draws
    _resize_to(samples, ctx, ctx.final_sizes, _pick(ctx, s["final_resize_modes"]), "final")
    sizes = s["final_sinc_sizes"]
    kernels, applied, p = random_sinc_kernels(d, ctx.n, s["final_sinc_prob"], sizes, s["final_sinc_omega"],
                                              max(sizes))
    samples.filter(kernels)
    ctx.record.add("sinc", applied, stage="final", kernel_size=p["size"], omega=p["omega"])


def realesrgan(samples: Samples, ctx: Context) -> None:
    s, d = ctx.settings, ctx.draws
    _re_blur(samples, ctx, "", 1)
    _re_resize(samples, ctx, "", 1)
    _re_noise(samples, ctx, "", 1)
    _jpeg(samples, ctx, d.uniform(*s["jpeg_range"], ctx.n), 1)
    if d.bernoulli(s["second_blur_prob"]):
        _re_blur(samples, ctx, "2", 2)
    _re_resize(samples, ctx, "2", 2)
    _re_noise(samples, ctx, "2", 2)
    # The final step in one of two orders (per batch): [resize + sinc] then JPEG, or the reverse.
    sinc_first = d.bernoulli(0.5)
    if sinc_first:
        _re_final_resize_and_sinc(samples, ctx)
    _jpeg(samples, ctx, d.uniform(*s["jpeg_range2"], ctx.n), "final")
    if not sinc_first:
        _re_final_resize_and_sinc(samples, ctx)


# --------------------------------------------------------------------------------------
# BSRGAN's shuffled pipeline
# --------------------------------------------------------------------------------------
def _mean_scale(scale: tuple[float, float]) -> float:
    return math.sqrt(scale[0] * scale[1])


def _bsrgan_blur(samples: Samples, ctx: Context, left: list[tuple[float, float]], stage: int) -> None:
    """Per sample: anisotropic Gaussian (variances U[0, 4 + s) along a random direction)
    or isotropic (sigma U[0, 2 + 0.2 s)), s the scale still to go; odd size 7..25."""
    s, d, n = ctx.settings, ctx.draws, ctx.n
    sizes = torch.tensor(s["blur_kernel_sizes"], device=d.device)[d.choice([1.0] * len(s["blur_kernel_sizes"]), n)]
    sf = torch.tensor([_mean_scale(sc) for sc in left], device=d.device)
    aniso = d.bernoulli(s["aniso_prob"], n)
    var1, var2 = d.uniform(0, 1, n) * (4 + sf), d.uniform(0, 1, n) * (4 + sf)
    theta = d.uniform(0, math.pi, n)
    sigma_iso = d.uniform(0, 1, n) * (2 + 0.2 * sf)
    tiny = 1e-6  # a zero width is the identity; keep the division finite
    sigma_x = torch.where(aniso, var1.sqrt(), sigma_iso).clamp(min=tiny)
    sigma_y = torch.where(aniso, var2.sqrt(), sigma_iso).clamp(min=tiny)
    theta = torch.where(aniso, theta, torch.zeros_like(theta))
    samples.filter(gaussian_kernels(sigma_x, sigma_y, theta, sizes, max(s["blur_kernel_sizes"])))
    ctx.record.add("blur", stage=stage, kernel=["aniso" if a else "iso" for a in aniso.tolist()], kernel_size=sizes,
                   sigma=torch.stack([sigma_x, sigma_y], dim=1), theta=theta)


def _bsrgan_downsample2(samples: Samples, ctx: Context, left: list[tuple[float, float]]) -> None:
    """BSRGAN's first downsampling: a resize by a factor from [1, 2 s] (the fraction per
    batch, so equal scales keep equal sizes), or a Gaussian blur (sigma U[0.1, 0.6 s)
    per sample) sampled at the centres of s x s blocks to size/s."""
    s, d = ctx.settings, ctx.draws
    current = samples.sizes()
    if d.bernoulli(s["downsample2_resize_prob"]):
        u = d.uniform(0.0, 1.0)
        factors = [(1 + u * (2 * sh - 1), 1 + u * (2 * sw - 1)) for sh, sw in left]
        sizes = [downscaled_size(hw, f) for hw, f in zip(current, factors)]
        _resize_to(samples, ctx, sizes, _pick(ctx, s["resize_modes"]), "downsample2",
                   factor=[list(f) for f in factors])
    else:
        u = d.uniform(0.0, 1.0, ctx.n)
        sc = torch.tensor(left, device=d.device, dtype=torch.float32)
        sigma = 0.1 + u.view(-1, 1) * (0.6 * sc - 0.1)  # (n, 2): along rows, along columns
        size = 25
        kernels = gaussian_kernels(sigma[:, 1], sigma[:, 0], torch.zeros_like(u),
                                   torch.full((ctx.n,), size, device=d.device), size)
        samples.filter(kernels)
        sizes = [downscaled_size(hw, f) for hw, f in zip(current, left)]
        # Bilinear at half-pixel centres samples output pixel i at (i + 0.5) s - 0.5: the
        # centre of its s x s block (BSRGAN: a shifted kernel, then every s-th pixel).
        _resize_to(samples, ctx, sizes, "bilinear", "downsample2", sigma=sigma.flip(1))
    samples.clamp()


def _bsrgan_noise(samples: Samples, ctx: Context) -> None:
    """Gaussian noise per sample: level from the range (whole levels), colour, grey or
    channel-correlated (covariance |L^2 U^T D U|, U a random orthonormal basis, D
    random in [0, 1), L the range's top level)."""
    s, d, n = ctx.settings, ctx.draws, ctx.n
    lo, hi = s["noise_range"]
    level = d.integers(lo, hi, n).float()
    kind = d.choice([s["noise_prob"][t] for t in BSRGAN_NOISE_TYPES], n)
    basis = torch.linalg.svd(d.rand((n, 3, 3)).double().cpu())[0]
    spread = torch.diag_embed(d.rand((n, 3)).double().cpu())
    cov = ((hi / 255.0) ** 2 * basis.transpose(1, 2) @ spread @ basis).abs()
    mix = torch.where(kind.view(-1, 1, 1) == 0, colour_matrices(level),
                      torch.where(kind.view(-1, 1, 1) == 1, grey_matrices(level),
                                  correlated_matrices(cov.to(d.device))))
    samples.apply(lambda x, rows: add_mixed_gaussian(x, mix[rows], d))
    ctx.record.add("noise", type=[BSRGAN_NOISE_TYPES[k] for k in kind.tolist()], sigma=level)


def bsrgan(samples: Samples, ctx: Context) -> None:
    s, d, n = ctx.settings, ctx.draws, ctx.n
    left = list(ctx.scales)  # the scale still to go, per sample
    # Downsample 1 (BSRGAN: x4 only): halve first, then degrade for the half scale left.
    if d.bernoulli(s["downsample1_prob"]):
        rows = [i for i in range(n) if min(left[i]) >= s["downsample1_min_scale"]]
        mode = "matlab_bicubic" if d.bernoulli(0.5) else _pick(ctx, s["resize_modes"])
        sizes = samples.sizes()
        for i in rows:
            sizes[i] = downscaled_size(sizes[i], 2.0)
            left[i] = (left[i][0] / 2, left[i][1] / 2)
        samples.resize(sizes, mode)
        samples.clamp()
        ctx.record.add("resize", rows, stage="downsample1", mode=mode, size=[list(x) for x in sizes])
    order = d.permutation(6)  # 0, 1 blur; 2, 3 downsample; 4 noise; 5 JPEG (BSRGAN's 6, camera ISP, needs a model)
    i2, i3 = order.index(2), order.index(3)
    if i2 > i3:  # the second downsampling comes after the first
        order[i2], order[i3] = 3, 2
    for op in order:
        if op in (0, 1):
            _bsrgan_blur(samples, ctx, left, op + 1)
        elif op == 2:
            _bsrgan_downsample2(samples, ctx, left)
        elif op == 3:
            _resize_to(samples, ctx, ctx.final_sizes, _pick(ctx, s["resize_modes"]), "downsample3")
            samples.clamp()
        elif op == 4:
            _bsrgan_noise(samples, ctx)
        else:
            applied = d.bernoulli(s["jpeg_prob"], n)
            _jpeg(samples, ctx, d.integers(*s["jpeg_range"], n).float(), "shuffled", applied)
    _jpeg(samples, ctx, d.integers(*s["final_jpeg_range"], n).float(), "final")


PIPELINE_FUNCTIONS = {"realesrgan": realesrgan, "bsrgan": bsrgan}


# --------------------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------------------
def _per_sample_scales(scales, n: int) -> list[tuple[float, float]]:
    t = torch.as_tensor(scales, dtype=torch.float64).detach().cpu()
    if t.dim() == 0:
        t = t.expand(n)
    if t.dim() == 1:
        t = t.view(-1, 1).expand(-1, 2)
    if t.dim() != 2 or t.shape != (n, 2):
        raise CiaosrError(f"scales must be one factor per sample ({n},) or (s_h, s_w) per sample ({n}, 2), "
                          f"got shape {tuple(torch.as_tensor(scales).shape)}")
    if not bool(torch.isfinite(t).all()) or bool((t < 1).any()):
        raise CiaosrError(f"scales must be finite and at least 1, got {t.tolist()}")
    return [(float(a), float(b)) for a, b in t.tolist()]


@torch.no_grad()
def degrade(hr: torch.Tensor, scales, settings: DegradationSettings | None, generator: torch.Generator,
            *, return_params: bool = False):
    """Low-resolution inputs for a batch of high-resolution crops.

    ``hr``: (B, 3, H, W) float in [0, 1] on any device. ``scales``: (B,) factors, or
    (B, 2) (s_h, s_w), each at least 1 (a batch may mix them). ``settings``: a
    :class:`DegradationSettings` (None: the released CiaoSR defaults). ``generator``:
    every random value comes from it (on the CPU or on ``hr``'s device; see ``draws``).

    Returns a list of B float32 tensors (3, round(H / s_h), round(W / s_w)) on ``hr``'s
    device, in [0, 1] on 8-bit levels; with ``return_params`` also a list of B dicts
    (``pipeline``, ``scale``, ``size`` and the ``steps`` drawn for that sample).
    """
    settings = DegradationSettings.from_config(settings)
    if not isinstance(hr, torch.Tensor) or hr.dim() != 4 or hr.shape[1] != 3 or not hr.is_floating_point():
        shape = tuple(hr.shape) if isinstance(hr, torch.Tensor) else type(hr).__name__
        raise CiaosrError(f"hr must be a float tensor (B, 3, H, W), got {shape}")
    n, _, h, w = hr.shape
    per_sample = _per_sample_scales(scales, n)
    final = [downscaled_size((h, w), sc) for sc in per_sample]
    record = Record(n, return_params)
    ctx = Context(settings, Draws(generator, hr.device), record, per_sample, final)
    samples = Samples(hr.float())
    PIPELINE_FUNCTIONS[settings.pipeline](samples, ctx)
    lrs = [(img.clamp(0, 1) * 255).round() / 255 for img in samples.images()]
    if not return_params:
        return lrs
    params = [{"pipeline": settings.pipeline, "scale": list(sc), "size": list(sz), "steps": steps}
              for sc, sz, steps in zip(per_sample, final, record.steps)]
    return lrs, params

"""The settings of the two degradation pipelines: defaults, and checking a user's config.

Defaults are the published ones: for ``realesrgan`` the released CiaoSR real-world
configuration (Real-ESRGAN's second-order settings with the final JPEG at quality
5..50; shared/docs/real-world-recipe.md), for ``bsrgan`` the BSRGAN code's constants.
docs/real-world.md tables them next to the published values they come from.

A config is a mapping of setting names to values; what it leaves out keeps its
default. A name the pipeline does not know, or a value out of its domain, is a
:class:`ciaosr.errors.CiaosrError` naming the setting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Mapping

from ...errors import CiaosrError
from ...options import DEGRADATION_PIPELINES as PIPELINES
from .kernels import KERNEL_TYPES
from .resize import RESIZE_MODES

BSRGAN_NOISE_TYPES = ("colour", "grey", "correlated")

_KERNEL_SIZES = (7, 9, 11, 13, 15, 17, 19, 21)
_KERNEL_PROB = {"iso": 0.405, "aniso": 0.225, "generalized_iso": 0.108, "generalized_aniso": 0.027,
                "plateau_iso": 0.108, "plateau_aniso": 0.027, "sinc": 0.1}
_MODES = ("area", "bilinear", "bicubic")


# --------------------------------------------------------------------------------------
# Checking one value
# --------------------------------------------------------------------------------------
def _number(key: str, v, lo: float = -math.inf, hi: float = math.inf, integer: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise CiaosrError(f"degradation setting '{key}' must be a finite number, got {v!r}")
    if integer and v != int(v):
        raise CiaosrError(f"degradation setting '{key}' must be whole numbers, got {v!r}")
    if not lo <= v <= hi:
        raise CiaosrError(f"degradation setting '{key}' must be in [{lo:g}, {hi:g}], got {v!r}")
    return int(v) if integer else float(v)


def _pair(key: str, v) -> tuple:
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        raise CiaosrError(f"degradation setting '{key}' must be a range [low, high], got {v!r}")
    return tuple(v)


def range_of(lo: float = -math.inf, hi: float = math.inf, integer: bool = False, positive: bool = False):
    """A [low, high] range inside [lo, hi] (low > 0 if ``positive``)."""
    def check(key: str, v):
        a, b = (_number(key, x, lo, hi, integer) for x in _pair(key, v))
        if a > b:
            raise CiaosrError(f"degradation setting '{key}': low {a:g} is above high {b:g}")
        if positive and a <= 0:
            raise CiaosrError(f"degradation setting '{key}' must be above 0, got {v!r}")
        return (a, b)
    return check


def probability(key: str, v) -> float:
    return _number(key, v, 0.0, 1.0)


def _sums_to_one(key: str, values) -> None:
    if abs(sum(values) - 1.0) > 1e-6:
        raise CiaosrError(f"degradation setting '{key}': probabilities must sum to 1, got {sum(values):g}")


def probabilities(count: int):
    """A list of ``count`` probabilities summing to 1."""
    def check(key: str, v):
        if not isinstance(v, (list, tuple)) or len(v) != count:
            raise CiaosrError(f"degradation setting '{key}' must be a list of {count} probabilities, got {v!r}")
        out = tuple(_number(key, p, 0.0, 1.0) for p in v)
        _sums_to_one(key, out)
        return out
    return check


def named_probabilities(names: tuple[str, ...]):
    """A mapping of some of ``names`` to probabilities summing to 1 (the rest 0)."""
    def check(key: str, v):
        if not isinstance(v, Mapping) or not v:
            raise CiaosrError(f"degradation setting '{key}' must map names to probabilities, got {v!r}")
        for name in v:
            if name not in names:
                raise CiaosrError(f"degradation setting '{key}': unknown name '{name}' (known: {', '.join(names)})")
        out = {name: _number(f"{key}.{name}", v.get(name, 0.0), 0.0, 1.0) for name in names}
        _sums_to_one(key, out.values())
        return MappingProxyType(out)
    return check


def odd_sizes(largest: int):
    """A non-empty list of odd kernel sizes from 1 to ``largest``."""
    def check(key: str, v):
        if not isinstance(v, (list, tuple)) or not v:
            raise CiaosrError(f"degradation setting '{key}' must be a list of odd kernel sizes, got {v!r}")
        out = tuple(_number(key, s, 1, largest, integer=True) for s in v)
        if any(s % 2 == 0 for s in out):
            raise CiaosrError(f"degradation setting '{key}': kernel sizes must be odd, got {list(out)}")
        return out
    return check


def resize_modes(key: str, v) -> tuple[str, ...]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, (list, tuple)) or not v or any(m not in RESIZE_MODES for m in v):
        raise CiaosrError(f"degradation setting '{key}' must be a list of resize modes from "
                          f"{', '.join(RESIZE_MODES)}, got {v!r}")
    return tuple(v)


# --------------------------------------------------------------------------------------
# The two pipelines' settings: name -> (check, default)
# --------------------------------------------------------------------------------------
def _blur_specs(suffix: str, sigma: tuple[float, float]) -> dict:
    return {
        f"kernel_sizes{suffix}": (odd_sizes(21), _KERNEL_SIZES),
        f"kernel_prob{suffix}": (named_probabilities(KERNEL_TYPES), _KERNEL_PROB),
        f"blur_sigma{suffix}": (range_of(0, 100, positive=True), sigma),
        f"rotation_range{suffix}": (range_of(-2 * math.pi, 2 * math.pi), (-math.pi, math.pi)),
        f"betag_range{suffix}": (range_of(0, 100, positive=True), (0.5, 4.0)),
        f"betap_range{suffix}": (range_of(0, 100, positive=True), (1.0, 2.0)),
    }


def _noise_specs(suffix: str, sigma: tuple[float, float], poisson: tuple[float, float]) -> dict:
    return {
        f"gaussian_noise_prob{suffix}": (probability, 0.5),
        f"noise_range{suffix}": (range_of(0, 255), sigma),
        f"poisson_scale_range{suffix}": (range_of(0, 100), poisson),
        f"gray_noise_prob{suffix}": (probability, 0.4),
    }


SPECS: dict[str, dict[str, tuple[Callable, Any]]] = {
    "realesrgan": {
        **_blur_specs("", (0.2, 3.0)),
        "resize_prob": (probabilities(3), (0.2, 0.7, 0.1)),
        "resize_range": (range_of(0, 100, positive=True), (0.15, 1.5)),
        "resize_modes": (resize_modes, _MODES),
        **_noise_specs("", (1.0, 30.0), (0.05, 3.0)),
        "jpeg_range": (range_of(1, 100), (30.0, 95.0)),
        "second_blur_prob": (probability, 0.8),
        **_blur_specs("2", (0.2, 1.5)),
        "resize_prob2": (probabilities(3), (0.3, 0.4, 0.3)),
        "resize_range2": (range_of(0, 100, positive=True), (0.3, 1.2)),
        "resize_modes2": (resize_modes, _MODES),
        **_noise_specs("2", (1.0, 25.0), (0.05, 2.5)),
        "jpeg_range2": (range_of(1, 100), (5.0, 50.0)),
        "final_resize_modes": (resize_modes, _MODES),
        "final_sinc_prob": (probability, 0.8),
        "final_sinc_sizes": (odd_sizes(21), _KERNEL_SIZES),
        "final_sinc_omega": (range_of(0, math.pi, positive=True), (math.pi / 3, math.pi)),
    },
    "bsrgan": {
        "downsample1_prob": (probability, 0.25),
        "downsample1_min_scale": (lambda k, v: _number(k, v, 1.0), 2.0),
        "blur_kernel_sizes": (odd_sizes(25), (7, 9, 11, 13, 15, 17, 19, 21, 23, 25)),
        "aniso_prob": (probability, 0.5),
        "downsample2_resize_prob": (probability, 0.75),
        "resize_modes": (resize_modes, ("bilinear", "bicubic", "area")),
        "noise_range": (range_of(0, 255, integer=True), (2, 25)),
        "noise_prob": (named_probabilities(BSRGAN_NOISE_TYPES), {"colour": 0.4, "grey": 0.4, "correlated": 0.2}),
        "jpeg_prob": (probability, 0.9),
        "jpeg_range": (range_of(1, 100, integer=True), (30, 95)),
        "final_jpeg_range": (range_of(1, 100, integer=True), (30, 95)),
    },
}


def _plain(v):
    """A value as YAML/JSON holds it: tuples as lists, mappings as dicts."""
    if isinstance(v, Mapping):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


@dataclass(frozen=True)
class DegradationSettings:
    """A pipeline name and all its settings, checked (``settings["noise_range"]``)."""

    pipeline: str
    values: Mapping[str, Any]

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | "DegradationSettings" | None = None,
                    pipeline: str | None = None) -> "DegradationSettings":
        """Settings from a config mapping (None: the defaults). The pipeline is
        ``pipeline``, else the config's ``pipeline`` key, else ``realesrgan``."""
        if isinstance(cfg, DegradationSettings):
            if pipeline is not None and pipeline != cfg.pipeline:
                raise CiaosrError(f"degradation settings are for the {cfg.pipeline} pipeline, not {pipeline}")
            return cfg
        if cfg is None:
            cfg = {}
        if not isinstance(cfg, Mapping):
            raise CiaosrError(f"degradation settings must be a mapping of names to values, got {cfg!r}")
        given = cfg.get("pipeline")
        if pipeline is not None and given is not None and given != pipeline:
            raise CiaosrError(f"degradation setting 'pipeline' is '{given}', but the {pipeline} pipeline was asked for")
        name = pipeline or given or "realesrgan"
        if name not in SPECS:
            raise CiaosrError(f"unknown degradation pipeline '{name}' (one of {', '.join(PIPELINES)})")
        specs = SPECS[name]
        for key in cfg:
            if key != "pipeline" and key not in specs:
                raise CiaosrError(f"unknown degradation setting '{key}' for the {name} pipeline "
                                  f"(known: {', '.join(specs)})")
        values = {}
        for key, (check, default) in specs.items():
            values[key] = check(key, cfg[key] if key in cfg else _plain(default))
        return cls(name, MappingProxyType(values))

    def __getitem__(self, key: str):
        return self.values[key]

    def as_dict(self) -> dict:
        """The settings as a plain config mapping (``pipeline`` included), which
        :meth:`from_config` takes back unchanged."""
        return {"pipeline": self.pipeline, **{k: _plain(v) for k, v in self.values.items()}}


__all__ = ["DegradationSettings", "PIPELINES", "SPECS", "BSRGAN_NOISE_TYPES"]

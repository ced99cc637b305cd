"""The architecture units: every encoder and decoder registers itself here by decorator.

A unit is a class that builds itself from constructor arguments and also owns what it
knows about official checkpoints (detection, argument inference, key conversion; see
``ciaosr.checkpoints.official``). A model name is ``<encoder>-<decoder>``; every decoder
takes every encoder. Each decoder brings the input normalisation and global-residual
convention its official implementation was trained with.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from ..errors import CiaosrError


@dataclass(frozen=True)
class EncoderEntry:
    name: str
    cls: type
    defaults: dict = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class DecoderEntry:
    name: str
    cls: type
    mean: tuple
    std: tuple
    residual: bool  # a global bilinear residual of the normalised input
    defaults: dict = field(default_factory=dict)
    description: str = ""
    #: The encoders it runs on (None: every one) and, per encoder name, the encoder
    #: arguments of its published configurations (OPE-SR's parameter-free decoder reads
    #: its coefficients straight from the encoder's channels, so it fixes their number;
    #: LMF's SwinIR ends in a 64-channel convolution).
    encoders: tuple | None = None
    encoder_args: dict = field(default_factory=dict)


_ENCODERS: dict[str, EncoderEntry] = {}
_DECODERS: dict[str, DecoderEntry] = {}


def register_encoder(name: str, *, defaults: dict | None = None, description: str = ""):
    """Class decorator; one class may be registered under several names (EDSR-baseline
    and EDSR are one class with other defaults)."""
    def decorate(cls):
        _ENCODERS[name] = EncoderEntry(name, cls, dict(defaults or {}), description)
        return cls
    return decorate


def register_decoder(name: str, *, mean, std, residual: bool, defaults: dict | None = None,
                     description: str = "", encoders=None, encoder_args: dict | None = None):
    """``encoders``: the encoder names it runs on (None: all); ``encoder_args``:
    ``{encoder name: arguments}`` its published configurations give that encoder."""
    def decorate(cls):
        _DECODERS[name] = DecoderEntry(name, cls, tuple(mean), tuple(std), residual, dict(defaults or {}),
                                       description, tuple(encoders) if encoders is not None else None,
                                       dict(encoder_args or {}))
        return cls
    return decorate


def _load_units() -> None:
    # The unit packages import their modules, whose decorators fill the tables.
    importlib.import_module("ciaosr.encoders")
    importlib.import_module("ciaosr.decoders")


def encoders() -> dict[str, EncoderEntry]:
    _load_units()
    return dict(_ENCODERS)


def decoders() -> dict[str, DecoderEntry]:
    _load_units()
    return dict(_DECODERS)


def list_models(pretrained: bool = False) -> list[str]:
    """Every ``<encoder>-<decoder>`` name, or only those whose weights ship inside the
    package (``pretrained=True``)."""
    from .pretrained import shipped

    names = [f"{e}-{d}" for e in encoders() for d, entry in decoders().items()
             if entry.encoders is None or e in entry.encoders]
    return [n for n in names if shipped(n) is not None] if pretrained else names


def split_name(name: str) -> tuple[EncoderEntry, DecoderEntry]:
    """``'edsr-baseline-ciaosr'`` -> its encoder and decoder entries."""
    encoder, _, decoder = name.rpartition("-")
    encs, decs = encoders(), decoders()
    if encoder not in encs or decoder not in decs:
        raise CiaosrError(f"unknown model '{name}' (known: {', '.join(list_models())})")
    runs_on = decs[decoder].encoders
    if runs_on is not None and encoder not in runs_on:
        raise CiaosrError(f"model '{name}': the {decoder} decoder runs on {', '.join(runs_on)} only")
    return encs[encoder], decs[decoder]

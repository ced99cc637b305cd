"""Build any ``<encoder>-<decoder>`` model by name.

Encoders are feature trunks; decoders are implicit decoders that take any encoder's
channels. Each decoder family brings the input normalisation and global-residual
convention its official implementation was trained with.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from ..errors import CiaosrError
from .sr_model import ImplicitSRModel

CIAOSR_MEAN = (0.4488, 0.4371, 0.4040)


@dataclass(frozen=True)
class EncoderEntry:
    target: str  # "module:Class"
    defaults: dict = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class DecoderEntry:
    target: str
    mean: tuple
    std: tuple
    residual: bool
    defaults: dict = field(default_factory=dict)
    description: str = ""


ENCODERS: dict[str, EncoderEntry] = {
    "edsr-baseline": EncoderEntry("ciaosr.encoders.edsr:EDSR", {},
                                  "EDSR-baseline: 16 residual blocks, 64 channels"),
    "edsr": EncoderEntry("ciaosr.encoders.edsr:EDSR",
                         {"mid_channels": 256, "num_blocks": 32, "res_scale": 0.1},
                         "EDSR: 32 residual blocks, 256 channels, res-scale 0.1"),
    "rdn": EncoderEntry("ciaosr.encoders.rdn:RDN", {},
                        "RDN: 16 residual dense blocks x 8 layers, 64 channels"),
    "swinir": EncoderEntry("ciaosr.encoders.swinir:SwinIR", {},
                           "SwinIR (classical SR): 180 channels, 6x6 Swin blocks, window 8"),
}

DECODERS: dict[str, DecoderEntry] = {
    "ciaosr": DecoderEntry("ciaosr.decoders.ciaosr:CiaoSRDecoder", CIAOSR_MEAN, (1.0, 1.0, 1.0), True,
                           description="implicit attention over 2x2 latents + cross-scale non-local attention"),
    "liif": DecoderEntry("ciaosr.decoders.liif:LIIFDecoder", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), False,
                         description="local implicit image function"),
    "lte": DecoderEntry("ciaosr.decoders.lte:LTEDecoder", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), True,
                        description="local texture estimator"),
    "metasr": DecoderEntry("ciaosr.decoders.metasr:MetaSRDecoder", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), False,
                           description="meta-upscale"),
}


def _resolve(target: str):
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def model_names() -> list[str]:
    return [f"{e}-{d}" for e in ENCODERS for d in DECODERS]


def split_name(name: str) -> tuple[str, str]:
    """``'edsr-baseline-ciaosr'`` -> ``('edsr-baseline', 'ciaosr')``."""
    encoder, _, decoder = name.rpartition("-")
    if encoder not in ENCODERS or decoder not in DECODERS:
        known = ", ".join(model_names())
        raise CiaosrError(f"unknown model '{name}' (known: {known})")
    return encoder, decoder


def build_model(name: str, encoder_args: dict | None = None, decoder_args: dict | None = None) -> ImplicitSRModel:
    """A freshly initialised model. ``encoder_args``/``decoder_args`` override the
    published configuration (e.g. a smaller RDN)."""
    enc_name, dec_name = split_name(name)
    enc_entry, dec_entry = ENCODERS[enc_name], DECODERS[dec_name]
    enc_kwargs = {**enc_entry.defaults, **(encoder_args or {})}
    dec_kwargs = {**dec_entry.defaults, **(decoder_args or {})}
    try:
        encoder = _resolve(enc_entry.target)(**enc_kwargs)
        decoder = _resolve(dec_entry.target)(encoder.out_dim, **dec_kwargs)
    except (TypeError, ValueError) as exc:
        raise CiaosrError(f"bad arguments for model '{name}': {exc}") from None
    model = ImplicitSRModel(encoder, decoder, mean=dec_entry.mean, std=dec_entry.std, residual=dec_entry.residual)
    model.spec = {"name": name, "encoder_args": enc_kwargs, "decoder_args": dec_kwargs}
    return model


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())

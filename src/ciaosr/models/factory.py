"""Build any ``<encoder>-<decoder>`` model by name from the registered units."""

from __future__ import annotations

from .registry import split_name
from .sr_model import ImplicitSRModel


def build_model(name: str, encoder_args: dict | None = None, decoder_args: dict | None = None) -> ImplicitSRModel:
    """A freshly initialised model. ``encoder_args``/``decoder_args`` override the
    published configuration (e.g. a smaller RDN)."""
    from ..errors import CiaosrError

    enc, dec = split_name(name)
    enc_kwargs = {**enc.defaults, **dec.encoder_args.get(enc.name, {}), **(encoder_args or {})}
    dec_kwargs = {**dec.defaults, **(decoder_args or {})}
    try:
        encoder = enc.cls(**enc_kwargs)
        decoder = dec.cls(encoder.out_dim, **dec_kwargs)
    except (TypeError, ValueError) as exc:
        raise CiaosrError(f"bad arguments for model '{name}': {exc}") from None
    spec = {"name": name, "encoder_args": enc_kwargs, "decoder_args": dec_kwargs}
    residual = dec.residual if decoder.global_residual is None else decoder.global_residual
    return ImplicitSRModel(encoder, decoder, mean=dec.mean, std=dec.std, residual=residual, spec=spec)


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def default_parameter_count(name: str) -> int:
    """Parameters of model ``name`` at its published size, built on the meta device when
    the modules allow it (no memory, no init cost)."""
    import torch

    try:
        with torch.device("meta"):
            return count_parameters(build_model(name))
    except (NotImplementedError, RuntimeError):
        return count_parameters(build_model(name))

"""Build any ``<encoder>-<decoder>`` model by name from the registered units."""

from __future__ import annotations

import torch
from torch.overrides import TorchFunctionMode

from .registry import split_name
from .sr_model import ImplicitSRModel


def build_model(name: str, encoder_args: dict | None = None, decoder_args: dict | None = None) -> ImplicitSRModel:
    """A freshly initialised model. ``encoder_args``/``decoder_args`` override the
    published configuration (e.g. a smaller RDN)."""
    enc, dec, enc_kwargs, dec_kwargs = _configuration(name, encoder_args, decoder_args)
    encoder = _make(name, enc.cls, **enc_kwargs)
    decoder = _make(name, dec.cls, encoder.out_dim, **dec_kwargs)
    spec = {"name": name, "encoder_args": enc_kwargs, "decoder_args": dec_kwargs}
    residual = dec.residual if decoder.global_residual is None else decoder.global_residual
    return ImplicitSRModel(encoder, decoder, mean=dec.mean, std=dec.std, residual=residual, spec=spec)


def _configuration(name: str, encoder_args: dict | None = None, decoder_args: dict | None = None):
    """The registry entries of model ``name`` and the arguments its encoder and decoder
    are built with."""
    enc, dec = split_name(name)
    enc_kwargs = {**enc.defaults, **dec.encoder_args.get(enc.name, {}), **(encoder_args or {})}
    dec_kwargs = {**dec.defaults, **(decoder_args or {})}
    return enc, dec, enc_kwargs, dec_kwargs


def _make(name: str, cls, *args, **kwargs):
    """One unit of model ``name``; arguments it refuses are a one-line error."""
    from ..errors import CiaosrError

    try:
        return cls(*args, **kwargs)
    except (TypeError, ValueError) as exc:
        raise CiaosrError(f"bad arguments for model '{name}': {exc}") from None


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


class _UnfilledWeights(TorchFunctionMode):
    """Modules built only to be counted: their weights are allocated but not initialised
    (filling them costs seconds per model, SwinIR's ``trunc_normal_`` most). The
    initialisers that PyTorch dispatches (``torch.nn.init``'s ``uniform_``,
    ``kaiming_uniform_``, ..., the defaults of Linear, Conv2d and LayerNorm) return at
    once; the others (``kaiming_normal_``, ``trunc_normal_``) end in ``Tensor.normal_``
    or ``Tensor.uniform_``, which fill zeros instead: cheap, and a value that
    ``trunc_normal_``'s rejection loop accepts. The meta device is no way out: its
    versions of these operations run in Python and import torch._dynamo (seconds)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__module__", None) == "torch.nn.init" and func.__name__.endswith("_"):
            return args[0] if args else kwargs["tensor"]
        if func in (torch.Tensor.normal_, torch.Tensor.uniform_):
            return args[0].zero_()
        return func(*args, **kwargs)


#: Encoder configuration -> (its output channels, its parameters), as counted so far in
#: this process: most encoders carry many decoders.
_ENCODER_SIZES: dict[str, tuple[int, int]] = {}


def default_parameter_count(name: str) -> int:
    """Parameters of model ``name`` at its published size: its encoder's and its
    decoder's (the model around them adds buffers only), each built with unfilled
    weights, and each encoder configuration once per process."""
    enc, dec, enc_kwargs, dec_kwargs = _configuration(name)
    key = f"{enc.name} {sorted(enc_kwargs.items())!r}"
    with _UnfilledWeights():
        if key not in _ENCODER_SIZES:
            encoder = _make(name, enc.cls, **enc_kwargs)
            _ENCODER_SIZES[key] = encoder.out_dim, count_parameters(encoder)
        out_dim, encoder_parameters = _ENCODER_SIZES[key]
        return encoder_parameters + count_parameters(_make(name, dec.cls, out_dim, **dec_kwargs))

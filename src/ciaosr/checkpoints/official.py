"""Official checkpoints: detect the architecture, convert to our key names.

File layouts understood (each architecture unit knows its own keys and arguments, see
``models.registry``; this module only unwraps files and loops over the units):

* mmediting 0.x (official CiaoSR): ``{'state_dict': {'generator.<key>': ...}, ...}``,
  BasicSR-style ``params_ema`` / ``params``, or a bare generator state dict; encoder and
  decoder keys are told apart by the decoders' key prefixes.
* the LIIF code base (LIIF, LTE, MetaSR, and ITSRN's, which grew from it):
  ``{'model': {'name', 'args', 'sd'}}``, encoder
  keys under ``encoder.``; or a bare such ``sd``.
"""

from __future__ import annotations

import re

import torch

from ..errors import CiaosrError
from ..models.registry import decoders, encoders

# Buffers the official code stores but that our modules recompute at run time.
DERIVED_BUFFERS = ("relative_position_index", "attn_mask")


def _state_dict(obj, source: str) -> tuple[dict, dict | None]:
    """(state dict without wrappers or prefixes, the LIIF-style model spec or None)."""
    spec = None
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict) and "sd" in obj["model"]:
        spec = obj["model"]
        obj = spec["sd"]
    elif isinstance(obj, dict):
        for wrapper in ("state_dict", "params_ema", "params"):
            if isinstance(obj.get(wrapper), dict):
                obj = obj[wrapper]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CiaosrError(f"{source}: not a model checkpoint (no state dict of tensors found)")
    if any(k.startswith("generator.") for k in obj):
        obj = {k[len("generator."):]: v for k, v in obj.items() if k.startswith("generator.")}
    sd = {re.sub(r"^(module\.)+", "", k): v for k, v in obj.items() if not k.endswith(DERIVED_BUFFERS)}
    return sd, spec


def _split(sd: dict) -> tuple[dict, dict, bool]:
    """(trunk, decoder part, whether the file is in the LIIF code base's layout; OPE-SR's
    names its encoder ``srnet``)."""
    for prefix in ("encoder.", "srnet."):
        if any(k.startswith(prefix) for k in sd):
            trunk = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
            return trunk, {k: v for k, v in sd.items() if not k.startswith(prefix)}, True
    prefixes = tuple(p for entry in decoders().values() for p in entry.cls.official_prefixes)
    return ({k: v for k, v in sd.items() if not k.startswith(prefixes)},
            {k: v for k, v in sd.items() if k.startswith(prefixes)}, False)


def _decoder(dec_sd: dict, spec: dict | None, source: str) -> tuple[str, dict]:
    units = decoders()
    spec_args = (spec or {}).get("args") or {}
    if spec is not None:
        wanted = str(spec.get("name", "")).lower()
        units = {n: e for n, e in units.items() if e.cls.liif_name == wanted}
        if not units:
            raise CiaosrError(f"{source}: unsupported model '{wanted}' in a LIIF-format checkpoint")
    found = {}
    for name, entry in units.items():
        args = entry.cls.official_args(dec_sd, spec_args)
        if args is not None:
            found[name] = args
    if len(found) > 1:
        raise CiaosrError(f"{source}: the checkpoint keys match several decoder families ({', '.join(found)}); "
                          "cannot tell which")
    if not found:
        raise CiaosrError(f"{source}: cannot detect the model architecture from the checkpoint keys "
                          f"(tried: {', '.join(units)})")
    return next(iter(found.items()))


def _encoder(trunk: dict, spec: dict | None, liif_layout: bool, source: str) -> tuple[str, dict, dict]:
    """(encoder name, constructor args, trunk in our key names)."""
    spec_args = (spec or {}).get("args") or {}
    enc_spec = spec_args.get("encoder_spec") or spec_args.get("srnet_spec") or spec_args.get("encoder") or {}
    enc_spec_args = dict(enc_spec.get("args") or {})
    # an EDSR the spec calls a baseline has the baseline's res_scale (1) at any width
    baseline = str(enc_spec.get("name", "")).endswith("edsr-baseline")
    if baseline:
        enc_spec_args.setdefault("res_scale", 1.0)
    for cls in dict.fromkeys(entry.cls for entry in encoders().values()):
        ours = cls.from_liif_keys(trunk) if liif_layout else trunk
        found = cls.detect(ours, enc_spec_args)
        if found is not None:
            return ("edsr-baseline" if baseline and found[0] == "edsr" else found[0]), found[1], ours
    raise CiaosrError(f"{source}: cannot detect the encoder architecture from the checkpoint keys")


def convert_official(obj, source: str) -> tuple[str, dict, dict, dict]:
    """(model name, encoder args, decoder args, state dict in our names) of a loaded file."""
    sd, spec = _state_dict(obj, source)
    trunk, dec_sd, liif_layout = _split(sd)
    dec_name, dec_args = _decoder(dec_sd, spec, source)
    enc_name, enc_args, trunk = _encoder(trunk, spec, liif_layout, source)
    ours = {f"encoder.{k}": v for k, v in trunk.items()}
    ours.update({f"decoder.{k}": v for k, v in dec_sd.items()})
    return f"{enc_name}-{dec_name}", enc_args, dec_args, ours

"""Official checkpoints: detect the architecture from keys and shapes, convert to ours.

Layouts understood:

* CiaoSR (mmediting 0.x): ``{'state_dict': {'generator.<key>': ...}, ...}`` or a bare
  generator state dict, with EDSR-baseline/EDSR, RDN or SwinIR encoders of any size.
* LIIF, LTE and MetaSR (the LIIF code base): ``{'model': {'name', 'args', 'sd'}, ...}``.
"""

from __future__ import annotations

import importlib
import re

import torch

from ..errors import CiaosrError

# Buffers the official code stores but that our modules recompute at run time.
DERIVED_BUFFERS = ("relative_position_index", "attn_mask")
CIAOSR_DECODER_PREFIXES = ("imnet_q.", "imnet_k.", "imnet_v.", "imnet_a.", "cs_attn.")


def _strip_prefixes(sd: dict) -> dict:
    """Drop ``generator.``/``module.`` prefixes; keep only generator keys if any are marked."""
    if any(k.startswith("generator.") for k in sd):
        sd = {k[len("generator."):]: v for k, v in sd.items() if k.startswith("generator.")}
    return {re.sub(r"^(module\.)+", "", k): v for k, v in sd.items()}


def _tensors_only(obj, source: str) -> dict:
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CiaosrError(f"{source}: not a model checkpoint (no state dict of tensors found)")
    return obj


def _drop_derived(sd: dict) -> dict:
    return {k: v for k, v in sd.items() if not k.endswith(DERIVED_BUFFERS)}


# --- encoders ---------------------------------------------------------------------

def _detect_trunk(sd: dict, source: str) -> tuple[str, dict]:
    """(encoder name, constructor args) of a trunk state dict in our key layout."""
    if "body.0.conv1.weight" in sd:
        from ..encoders.edsr import args_from_state_dict

        args = args_from_state_dict(sd)
        # Narrow trunks (res-scale 1) belong to the EDSR-baseline family, wide ones to EDSR.
        name = "edsr-baseline" if args["mid_channels"] <= 64 else "edsr"
        return name, args
    if "sfe1.weight" in sd:
        from ..encoders.rdn import args_from_state_dict

        return "rdn", args_from_state_dict(sd)
    if "patch_embed.norm.weight" in sd or "layers.0.residual_group.blocks.0.norm1.weight" in sd:
        from ..encoders.swinir import args_from_state_dict

        return "swinir", args_from_state_dict(sd)
    raise CiaosrError(f"{source}: cannot detect the encoder architecture from the checkpoint keys")


def _liif_edsr_to_ours(sd: dict) -> dict:
    """LIIF's EDSR names (head.0, body.i.body.{0,2}, body.N) -> conv_first/body.i.conv{1,2}/conv_after_body."""
    blocks = [int(m.group(1)) for k in sd if (m := re.match(r"body\.(\d+)\.body\.0\.weight$", k))]
    last = max(blocks) + 1 if blocks else 0
    out = {}
    for k, v in sd.items():
        if k.startswith(("sub_mean.", "add_mean.", "tail.")):
            continue
        k = re.sub(r"^head\.0\.", "conv_first.", k)
        k = re.sub(rf"^body\.{last}\.", "conv_after_body.", k)
        k = re.sub(r"^body\.(\d+)\.body\.0\.", r"body.\1.conv1.", k)
        k = re.sub(r"^body\.(\d+)\.body\.2\.", r"body.\1.conv2.", k)
        out[k] = v
    return out


def _liif_rdn_to_ours(sd: dict) -> dict:
    """LIIF's RDN names (SFENet, RDBs.i.convs.j.conv.0, LFF, GFF) -> the mmediting names."""
    out = {}
    for k, v in sd.items():
        if k.startswith(("UPNet.", "sub_mean.", "add_mean.")):
            continue
        k = re.sub(r"^SFENet1\.", "sfe1.", k)
        k = re.sub(r"^SFENet2\.", "sfe2.", k)
        k = re.sub(r"^RDBs\.(\d+)\.convs\.(\d+)\.conv\.0\.", r"rdbs.\1.layers.\2.conv.", k)
        k = re.sub(r"^RDBs\.(\d+)\.LFF\.", r"rdbs.\1.lff.", k)
        k = re.sub(r"^GFF\.", "gff.", k)
        out[k] = v
    return out


def _liif_trunk_to_ours(sd: dict) -> dict:
    if "head.0.weight" in sd:
        return _liif_edsr_to_ours(sd)
    if "SFENet1.weight" in sd:
        return _liif_rdn_to_ours(sd)
    return {k: v for k, v in sd.items() if not k.startswith(("conv_last.", "upsample.", "conv_before_upsample."))}


# --- whole checkpoints ---------------------------------------------------------------

def _ciaosr_decoder_args(sd: dict) -> dict:
    hidden = [sd[f"imnet_q.layers.{i}.weight"].shape[0] for i in range(0, 100, 2)
              if f"imnet_q.layers.{i}.weight" in sd][:-1]
    return {
        "hidden": hidden,
        "non_local": "cs_attn.down.weight" in sd,
        "attention": "dot" if "imnet_k.layers.0.weight" in sd else "mlp",
    }


def convert_ciaosr(sd: dict, source: str) -> tuple[str, dict, dict, dict]:
    sd = _drop_derived(sd)
    trunk = {k: v for k, v in sd.items() if not k.startswith(CIAOSR_DECODER_PREFIXES)}
    enc_name, enc_args = _detect_trunk(trunk, source)
    ours = {f"encoder.{k}": v for k, v in trunk.items()}
    ours.update({f"decoder.{k}": v for k, v in sd.items() if k.startswith(CIAOSR_DECODER_PREFIXES)})
    return f"{enc_name}-ciaosr", enc_args, _ciaosr_decoder_args(sd), ours


def convert_liif_family(spec: dict, source: str) -> tuple[str, dict, dict, dict]:
    decoder = str(spec.get("name", "")).lower()
    if decoder not in ("liif", "lte", "metasr"):
        raise CiaosrError(f"{source}: unsupported model '{decoder}' in a LIIF-format checkpoint")
    sd = _drop_derived(_tensors_only(spec.get("sd"), source))
    trunk = _liif_trunk_to_ours({k[len("encoder."):]: v for k, v in sd.items() if k.startswith("encoder.")})
    enc_name, enc_args = _detect_trunk(trunk, source)
    enc_spec_args = (spec.get("args") or {}).get("encoder_spec", {}).get("args", {}) or {}
    if "res_scale" in enc_spec_args and enc_name.startswith("edsr"):
        enc_args["res_scale"] = float(enc_spec_args["res_scale"])
    ours = {f"encoder.{k}": v for k, v in trunk.items()}
    ours.update({f"decoder.{k}": v for k, v in sd.items() if not k.startswith("encoder.")})
    module = importlib.import_module(f"ciaosr.decoders.{decoder}")
    if decoder == "liif":
        dec_args = _liif_decoder_args(spec.get("args") or {})
    else:
        dec_args = module.args_from_official(spec)
        dec_args.pop("in_dim", None)  # the encoder's width: the factory passes it
    return f"{enc_name}-{decoder}", enc_args, dec_args, ours


def _liif_decoder_args(args: dict) -> dict:
    imnet_args = (args.get("imnet_spec") or {}).get("args", {}) or {}
    out = {key: bool(args.get(key, True)) for key in ("local_ensemble", "feat_unfold", "cell_decode")}
    out["hidden"] = list(imnet_args.get("hidden_list", [256, 256, 256, 256]))
    out["out_dim"] = int(imnet_args.get("out_dim", 3))
    return out


def convert_official(obj, source: str) -> tuple[str, dict, dict, dict]:
    """(model name, encoder args, decoder args, state dict in our names) of a loaded file."""
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict) and "sd" in obj["model"]:
        return convert_liif_family(obj["model"], source)
    if isinstance(obj, dict):
        for wrapper in ("state_dict", "params_ema", "params"):
            if isinstance(obj.get(wrapper), dict):
                obj = obj[wrapper]
                break
    sd = _strip_prefixes(_tensors_only(obj, source))
    if "imnet_q.layers.0.weight" in sd:
        return convert_ciaosr(sd, source)
    if "imnet.layers.0.weight" in sd and any(k.startswith("encoder.") for k in sd):
        name = "lte" if "coef.weight" in sd else "liif"
        return convert_liif_family({"name": name, "args": {}, "sd": sd}, source)
    raise CiaosrError(f"{source}: cannot detect the model architecture from the checkpoint keys")

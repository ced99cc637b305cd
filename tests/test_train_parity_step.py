"""One training step equals the official trainers' on the same batch and weights: the
loss, every parameter's gradient, and the parameters after one Adam step.

tests/data/official/step_<family>.pt come from the official code (benchmarks/official/make_step_vectors.py
there says how): LIIF's and LTE's and ITSRN's ``train()``, and the official CiaoSR
restorer's ``train_step``, each on a batch made by its own training pipeline, with small
encoders and MLPs. Here the official checkpoint loads through the project's converter,
and the project's own training step (``optimisation_step``, the optimiser the trainer
builds from the default config) runs on the same batch.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import ciaosr
from ciaosr.checkpoints.native import load_weights
from ciaosr.checkpoints.official import convert_official
from ciaosr.training.config import build_config
from ciaosr.training.schedule import make_optimizer
from ciaosr.training.step import optimisation_step

DATA = Path(__file__).parent / "data" / "official"
FAMILIES = {"liif": "edsr-baseline-liif", "metasr": "edsr-baseline-metasr", "lte": "edsr-baseline-lte",
            "itsrn": "edsr-baseline-itsrn", "ciaosr": "edsr-baseline-ciaosr"}


def _official_sd(ckpt) -> dict:
    return ckpt["model"]["sd"] if "model" in ckpt else ckpt


def _with_sd(ckpt, sd: dict):
    return {"model": {**ckpt["model"], "sd": sd}} if "model" in ckpt else sd


def _to_our_names(ckpt, source: str):
    """A function that maps any dict shaped like the official state dict (gradients,
    weights after the step) to our parameter names, through the same conversion the
    checkpoint loader applies: each official element is tagged with its index, the tags
    are converted, and our tensors are read back by tag."""
    sd = _official_sd(ckpt)
    tags, n = {}, 0
    for k, v in sd.items():
        tags[k] = torch.arange(n, n + v.numel(), dtype=torch.float64).view(v.shape)
        n += v.numel()
    _, _, _, ours = convert_official(_with_sd(ckpt, tags), source)

    def convert(d: dict) -> dict:
        flat = torch.full((n,), float("nan"), dtype=torch.float64)
        for k, v in d.items():
            flat[tags[k].long().flatten()] = v.double().flatten()
        return {k: flat[t.long()] for k, t in ours.items()}

    return convert


@pytest.mark.parametrize("family", list(FAMILIES))
def test_training_step_equals_the_official_one(family):
    pack = torch.load(DATA / f"step_{family}.pt", weights_only=True)
    ckpt = pack["checkpoint"]
    name, enc_args, dec_args, ours = convert_official(ckpt, family)
    assert name == FAMILIES[family]
    model = ciaosr.build_model(name, enc_args, dec_args)
    load_weights(model, ours, family)
    model.train()
    convert = _to_our_names(ckpt, family)
    grads_official, after_official = convert(pack["grads"]), convert(pack["after"])

    b = pack["batch"]
    batch = (b["inp_u8"].float() / 255, b["coord"], b["cell"], b["gt_u8"].float() / 255)
    opt = make_optimizer(model.parameters(), build_config({})["optimizer"])
    loss = optimisation_step(model, model, opt, batch)

    assert abs(loss.item() - pack["loss"]) <= 1e-6 * pack["loss"]
    trainable = [(k, p) for k, p in model.named_parameters() if p.requires_grad]
    # every official trainable element is one of ours, and the other way round
    assert sum(p.numel() for _, p in trainable) == sum(g.numel() for g in pack["grads"].values())
    for k, p in trainable:
        g = grads_official[k]
        assert not torch.isnan(g).any(), f"{k}: no official gradient maps to it"
        rel = (p.grad.double() - g).abs().max().item() / g.abs().max().item()
        assert rel <= 1e-5, (k, rel)
        # one Adam step moves each weight by about lr (1e-4): agree to 0.1% of that
        assert (p.detach().double() - after_official[k]).abs().max().item() <= 1e-7, k

"""One optimisation step: forward (under autocast), losses, backward (scaled for fp16),
optional gradient clipping, optimiser step. Shared by the trainer and the training-speed
benchmarks, so a benchmark times exactly what training does.

* ``optimisation_step``: L1 in the model's normalised space on sampled queries (the
  benchmark recipe, and the first, L1-only stage of the real-world recipe);
* ``realworld_step``: the real-world generator losses on a block of queries seen as an
  image (L1, perceptual, GAN), then, with a GAN loss, one discriminator step on the
  plain GT (real) and the prediction of this step (fake), as the released code does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..runtime import Precision
from .losses import gan_loss


def _backward_and_step(loss, opt, *, scaler=None, clip=None, params=None) -> None:
    """Gradients of ``loss`` into ``opt``'s parameters and one step (scaled under fp16:
    the caller updates the scaler once per iteration)."""
    opt.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        if clip:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(params, clip)
        scaler.step(opt)
    else:
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()


def optimisation_step(net, model, opt, batch, *, precision: Precision = Precision.FP32, scaler=None, clip=None,
                      params=None) -> torch.Tensor:
    """``net`` is what runs forward (``model`` or its DDP wrapper); ``batch`` is
    (lr, coord, cell, gt); ``scaler`` is ``precision.grad_scaler()``. Returns the loss
    (attached to nothing after the step)."""
    lr, coord, cell, gt = batch
    with precision.autocast(lr.device):
        pred = net(lr, coord, cell)
    loss = F.l1_loss(pred.float(), model.normalise_target(gt))
    _backward_and_step(loss, opt, scaler=scaler, clip=clip, params=params)
    if scaler is not None:
        scaler.update()
    return loss


@dataclass
class Adversary:
    """The discriminator side of a GAN step: the module (``model``), what runs it
    forward in its own step (``net``: it or its DDP wrapper) and its optimiser."""

    net: torch.nn.Module
    model: torch.nn.Module
    opt: torch.optim.Optimizer


def realworld_step(net, model, opt, batch, weights: dict, *, perceptual=None, adversary: Adversary | None = None,
                   precision: Precision = Precision.FP32, scaler=None, clip=None, params=None) -> dict:
    """One generator step on ``batch`` (a ``data.realworld.RealWorldBatch``), with the
    loss ``weights`` (``pixel``, ``perceptual``, ``gan``: the config's ``losses``):

    L1 and perceptual against ``batch.target`` (the sharpened GT), the generator's GAN
    term (real label on its prediction, discriminator frozen); then, when ``adversary``
    is given, one discriminator step: real loss on ``batch.real`` (the plain GT), fake
    loss on the detached prediction, gradients summed, one optimiser step. Predictions,
    targets and the discriminator's inputs are all in the model's normalised space, as
    released. Returns the loss terms, detached: ``loss`` (the generator's weighted sum),
    ``pixel``, ``perceptual``, ``gan``, ``d_real``, ``d_fake`` (those computed)."""
    dev = batch.lr.device
    with precision.autocast(dev):
        pred = net(batch.lr, batch.coord, batch.cell)
    pred = pred.float()
    target = model.normalise_target(batch.target)
    terms: dict[str, torch.Tensor] = {}
    loss = pred.new_zeros(())
    if weights["pixel"] > 0:
        terms["pixel"] = F.l1_loss(pred, target)
        loss = loss + weights["pixel"] * terms["pixel"]
    if weights["perceptual"] > 0 or weights["gan"] > 0:
        pred_img = batch.images(pred)
    if weights["perceptual"] > 0:
        with precision.autocast(dev):
            terms["perceptual"] = perceptual(pred_img, batch.images(target))
        loss = loss + weights["perceptual"] * terms["perceptual"]
    if weights["gan"] > 0:
        adversary.model.requires_grad_(False)  # the generator's step leaves the discriminator alone
        try:
            with precision.autocast(dev):
                terms["gan"] = gan_loss(adversary.model(pred_img), real=True)
        finally:
            adversary.model.requires_grad_(True)
        loss = loss + weights["gan"] * terms["gan"]
    terms["loss"] = loss
    _backward_and_step(loss, opt, scaler=scaler, clip=clip, params=params)

    if weights["gan"] > 0:
        real = batch.images(model.normalise_target(batch.real))
        d_opt = adversary.opt
        d_opt.zero_grad(set_to_none=True)
        for name, image, label in (("d_real", real, True), ("d_fake", pred_img.detach(), False)):
            with precision.autocast(dev):
                terms[name] = gan_loss(adversary.net(image), real=label)
            (scaler.scale(terms[name]) if scaler is not None else terms[name]).backward()
        if scaler is not None:
            scaler.step(d_opt)
        else:
            d_opt.step()
    if scaler is not None:
        scaler.update()
    return {k: v.detach() for k, v in terms.items()}

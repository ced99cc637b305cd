"""One optimisation step: forward (under autocast), L1 in the model's normalised space,
backward (scaled for fp16), optional gradient clipping, optimiser step. Shared by the
trainer and benchmarks/train_speed.py, so the benchmark times exactly what training does."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..runtime import Precision


def optimisation_step(net, model, opt, batch, *, precision: Precision = Precision.FP32, scaler=None, clip=None,
                      params=None) -> torch.Tensor:
    """``net`` is what runs forward (``model`` or its DDP wrapper); ``batch`` is
    (lr, coord, cell, gt); ``scaler`` is ``precision.grad_scaler()``. Returns the loss
    (attached to nothing after the step)."""
    lr, coord, cell, gt = batch
    with precision.autocast(lr.device):
        pred = net(lr, coord, cell)
    loss = F.l1_loss(pred.float(), model.normalise_target(gt))
    opt.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        if clip:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(params, clip)
        scaler.step(opt)
        scaler.update()
    else:
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
    return loss

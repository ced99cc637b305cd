"""Exponential moving average of a model's weights."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """``shadow = decay * shadow + (1 - decay) * weights`` after every optimiser step.

    The shadow is a full copy of the model (same class, ``spec`` and buffers), so it can
    be validated and exported like the model itself. Floating-point parameters and
    buffers are averaged; other buffers are copied.
    """

    def __init__(self, model: nn.Module, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.model = copy.deepcopy(model).eval()
        if hasattr(model, "spec"):
            self.model.spec = copy.deepcopy(model.spec)
        for p in self.model.parameters():
            p.requires_grad_(False)

    def _pairs(self, model: nn.Module):
        own = dict(self.model.named_parameters())
        own.update(dict(self.model.named_buffers()))
        src = dict(model.named_parameters())
        src.update(dict(model.named_buffers()))
        return [(own[k], src[k]) for k in own]

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        floats_e, floats_m = [], []
        for e, m in self._pairs(model):
            if e.dtype.is_floating_point:
                floats_e.append(e)
                floats_m.append(m.detach())
            else:
                e.copy_(m)
        if floats_e:
            torch._foreach_lerp_(floats_e, floats_m, 1.0 - self.decay)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "weights": {k: v.detach().clone() for k, v in self.model.state_dict().items()}}

    def load_state_dict(self, state: dict) -> None:
        self.decay = float(state["decay"])
        self.model.load_state_dict(state["weights"], strict=True)

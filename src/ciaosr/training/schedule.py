"""The optimiser (``make_optimizer``) and the learning-rate schedules, stepped once per
iteration.

* ``step``: the rate times ``gamma`` every ``step_size`` iterations (the papers' recipe);
* ``multistep``: times ``gamma`` at each of ``milestones``; ``constant``: unchanged;
* ``cosine``: half a cosine from ``optimizer.lr`` down to ``min_lr`` over the run. The
  run's progress is ``step / train.iterations``, or, when ``train.max_minutes`` is set and
  the time budget runs out first, the fraction of the budget spent; the larger of the two.
  The time budget is per invocation, so a run resumed after a time stop anneals again over
  its new budget (a warm restart), from the rate its step count gives. With
  ``warmup_iterations`` W, the rate first rises linearly from ``warmup_factor`` times
  ``optimizer.lr`` at step 0 to ``optimizer.lr`` at step W, and the cosine then runs over
  the other iterations (SRNO's official schedule: its per-epoch warm-up and cosine, taken
  per iteration, so each epoch starts at the official epoch's rate).
"""

from __future__ import annotations

import math
from typing import Callable

import torch


def cosine_factor(progress: float, min_factor: float) -> float:
    """The rate's multiplier at ``progress`` in [0, 1]: 1 at 0, ``min_factor`` at 1."""
    p = min(max(progress, 0.0), 1.0)
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * p))


def make_optimizer(params, ocfg: dict) -> torch.optim.Optimizer:
    """Adam (or AdamW) of the config's ``optimizer`` section over ``params``; with the
    defaults (lr 1e-4, betas (0.9, 0.999), no weight decay) it is the official trainers'
    ``Adam(lr=1e-4)``."""
    cls = torch.optim.AdamW if ocfg["type"] == "adamw" else torch.optim.Adam
    return cls(params, lr=ocfg["lr"], betas=tuple(ocfg["betas"]), weight_decay=ocfg["weight_decay"])


def make_scheduler(opt: torch.optim.Optimizer, scfg: dict, *, iterations: int,
                   time_fraction: Callable[[], float] | None = None):
    """The scheduler of ``scfg`` (the config's ``scheduler`` section) for ``opt``.
    ``time_fraction`` (cosine only) returns the fraction of the time budget spent."""
    kind = scfg["type"]
    if kind == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=int(scfg["step_size"]), gamma=scfg["gamma"])
    if kind == "cosine":
        base = opt.param_groups[0]["lr"]
        min_factor = min(float(scfg["min_lr"]) / base, 1.0) if base > 0 else 0.0

        # A plain function, not a callable object: LambdaLR would put an object's
        # attributes (the clock) into the training state, which must stay plain data.
        warmup, start = int(scfg.get("warmup_iterations") or 0), float(scfg.get("warmup_factor", 0.1))

        def factor(step: int) -> float:
            if step < warmup:
                return start + (1.0 - start) * step / warmup
            progress = (step - warmup) / max(iterations - warmup, 1)
            if time_fraction is not None:
                progress = max(progress, time_fraction())
            return cosine_factor(progress, min_factor)

        return torch.optim.lr_scheduler.LambdaLR(opt, factor)
    milestones = sorted(int(m) for m in scfg["milestones"]) if kind == "multistep" else []
    return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=scfg["gamma"])

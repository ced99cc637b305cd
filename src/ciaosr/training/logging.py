"""What a training run reports: a tqdm bar, a JSON-lines log, TensorBoard when present.

Only the main process (rank 0) writes anything. Files in the run folder:

* ``metrics.jsonl``: one JSON object per line, ``{"step", "loss", "lr", "it_per_s",
  "time"}`` (and the real-world loss terms ``loss_pixel``, ``loss_perceptual``,
  ``loss_gan``, ``loss_d_real``, ``loss_d_fake``) every ``log_every`` steps and ``{"step", "val": {...}, "val_mean"}`` after
  each validation;
* ``train.log``: the messages printed (start, warnings, validation, checkpoints);
* ``tb/``: TensorBoard scalars and sample images, when ``torch.utils.tensorboard``
  can be imported (``pip install tensorboard``); otherwise nothing.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from ..atomic import make_output_folders


def _tensorboard_writer(log_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard not installed (or broken): the JSONL log is enough
        return None
    try:
        return SummaryWriter(log_dir=str(log_dir))
    except Exception:
        return None


class RunLogger:
    def __init__(self, run_dir: Path | None, *, total_steps: int, start_step: int, progress="auto",
                 enabled: bool = True, tensorboard: bool = True):
        self.enabled = enabled and run_dir is not None
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self._jsonl = None
        self._text = None
        self.tb = None
        self.bar = None
        self._t0 = time.time()
        if not self.enabled:
            return
        make_output_folders([self.run_dir])
        self._jsonl = open(self.run_dir / "metrics.jsonl", "a", buffering=1)
        self._text = open(self.run_dir / "train.log", "a", buffering=1)
        if tensorboard:
            self.tb = _tensorboard_writer(self.run_dir / "tb")
        from tqdm.auto import tqdm

        disable = None if progress == "auto" else (not progress)
        self.bar = tqdm(total=total_steps, initial=start_step, unit="it", dynamic_ncols=True,
                        disable=disable, file=sys.stderr, desc="train")

    # -- messages -------------------------------------------------------------
    def info(self, message: str) -> None:
        if not self.enabled:
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self._text.write(f"{stamp} {message}\n")
        if self.bar is not None and not self.bar.disable:
            self.bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr, flush=True)

    def warn(self, message: str) -> None:
        self.info(f"warning: {message}")

    # -- numbers ----------------------------------------------------------------
    def advance(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def scalars(self, step: int, loss: float, lr: float, it_per_s: float, terms: dict[str, float] | None = None) -> None:
        """``terms``: the loss's parts (the real-world losses), written as ``loss_<name>``."""
        if not self.enabled:
            return
        row = {"step": step, "loss": loss, "lr": lr, "it_per_s": it_per_s, "time": round(time.time() - self._t0, 3)}
        for name, value in (terms or {}).items():
            row[f"loss_{name}"] = value
            if self.tb is not None:
                self.tb.add_scalar(f"train/loss_{name}", value, step)
        self._jsonl.write(json.dumps(row) + "\n")
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", its=f"{it_per_s:.2f}", refresh=False)
        if self.tb is not None:
            self.tb.add_scalar("train/loss", loss, step)
            self.tb.add_scalar("train/lr", lr, step)
            self.tb.add_scalar("train/it_per_s", it_per_s, step)

    def validation(self, step: int, results: dict[str, float], mean: float, image: torch.Tensor | None = None) -> None:
        if not self.enabled:
            return
        self._jsonl.write(json.dumps({"step": step, "val": results, "val_mean": mean}) + "\n")
        shown = ", ".join(f"{k} {v:.3f}" for k, v in results.items())
        self.info(f"step {step}: validation PSNR {shown} (mean {mean:.3f} dB)")
        if self.tb is not None:
            for k, v in results.items():
                self.tb.add_scalar(f"val/psnr/{k}", v, step)
            self.tb.add_scalar("val/psnr_mean", mean, step)
            if image is not None:
                self.tb.add_image("val/sample", image.clamp(0, 1).cpu(), step)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        for f in (self._jsonl, self._text):
            if f is not None:
                f.close()
        if self.tb is not None:
            self.tb.close()
        self.enabled = False

"""How much the training-sample differences from the official code mattered, measured.

Before 2026-12-03 the LR of a training sample was torch's float antialiased bicubic
(``F.interpolate(..., mode="bicubic", antialias=True)`` on the 8-bit crop, rounded);
both official pipelines use PIL's fixed-point bicubic. This script draws ``--samples``
samples (LIIF's recipe) from the shared training images and reports:

* the share of LR bytes the two resizes make differently, and the largest difference;
* the official LIIF EDSR-baseline checkpoint's L1 loss (its normalised space) on the same
  samples with either LR: the mean and the mean absolute per-sample change;
* for mmediting's crop-corner range (``0 .. H - crop - 1`` instead of ``0 .. H - crop``),
  the share of corner positions one recipe has and the other lacks, averaged over the
  samples' image and crop sizes.

    python benchmarks/recipe_differences.py --samples 256
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from machine_info import machine_summary  # noqa: E402
from side_by_side import default_images, shared_root  # noqa: E402

import ciaosr  # noqa: E402
from ciaosr.data.train_dataset import SRTrainDataset, make_sample  # noqa: E402
from ciaosr.geometry import scaled_size  # noqa: E402


def float_bicubic_u8(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The previous training LR: torch's float antialiased bicubic, rounded to bytes."""
    x = F.interpolate(img.float()[None], size=size, mode="bicubic", antialias=True, align_corners=False)
    return x.round().clamp(0, 255)[0].to(torch.uint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--out", default="/tmp/recipe_differences")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    images = default_images(Path(a.out))
    ds = SRTrainDataset([images], seed=0, recipe="liif")
    model = ciaosr.load_model(shared_root() / "weights/liif-edsr-baseline/edsr-baseline-liif.pth")
    differing, total, largest, loss_new, loss_old, corner_share = 0, 0, 0, [], [], []
    with torch.no_grad():
        for k in range(a.samples):
            img, draws = ds.image_and_draws(k)
            s = make_sample(img, draws, ds.lr_patch)
            c = scaled_size((ds.lr_patch, ds.lr_patch), draws.scale)[0]
            crop = img[:, draws.top:draws.top + c, draws.left:draws.left + c]
            old = float_bicubic_u8(crop, (ds.lr_patch, ds.lr_patch)).float() / 255
            # the flips of the sample, applied to the old LR as well
            if draws.flip_rows:
                old = old.flip(-2)
            if draws.flip_cols:
                old = old.flip(-1)
            if draws.transpose:
                old = old.transpose(-2, -1)
            d = (old - s["lr"]).abs() * 255
            differing += int((d > 0.5).sum())
            total += d.numel()
            largest = max(largest, float(d.max()))
            target = model.normalise_target(s["gt"][None])
            for lr, acc in ((s["lr"], loss_new), (old, loss_old)):
                pred = model(lr[None], s["coord"][None], s["cell"][None])
                acc.append(F.l1_loss(pred, target).item())
            h, w = img.shape[-2:]
            corner_share.append(1 - (h - c) * (w - c) / ((h - c + 1) * (w - c + 1)))
    change = np.abs(np.array(loss_new) - np.array(loss_old))
    print(f"{time.strftime('%Y-%m-%d')}, {machine_summary()}, {a.samples} samples (LIIF recipe, seed 0)")
    print(f"LR bytes differing between PIL's and torch's bicubic: {differing / total:.1%} (largest: {largest:.0f})")
    print(f"official LIIF checkpoint's L1 loss: PIL LR {np.mean(loss_new):.5f}, torch LR {np.mean(loss_old):.5f}; "
          f"mean |per-sample change| {change.mean():.2e} ({change.mean() / np.mean(loss_new):.2%} of the loss)")
    print(f"corner positions LIIF has and mmediting lacks: {np.mean(corner_share):.2%} on average")


if __name__ == "__main__":
    main()

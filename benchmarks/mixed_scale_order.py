"""Which goes first when one axis grows and the other shrinks: the model or the resize?

For each Set14 image, a top-left crop (``--crop``, square) is the original. Its input is
the original made ``--factor`` times narrower (PIL's antialiased bicubic); the target is
the original made ``--factor`` times shorter. Asking for ``factor x 1/factor`` (width
x height) on the input should give the target back. Two orders are scored (PSNR, RGB,
8 bits, whole image) with the given model: the model first (widen to the original's
size, then shrink the height with ``resize_bicubic``), and the resize first (shrink the
height, then the model widens), with plain bicubic for reference. ``ciaosr.upscale``
takes the model first (``ciaosr.inference.upscale``).

    python benchmarks/mixed_scale_order.py --data-root ../shared/datasets
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import ciaosr
from ciaosr.inference.tiling import tiled_upsample
from ciaosr.inference.upscale import resize_bicubic
from ciaosr.metrics.psnr import psnr_liif


def tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img, np.float32) / 255).permute(2, 0, 1)[None]


def to_u8(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0, 1) * 255).round() / 255


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-root", default="../shared/datasets")
    ap.add_argument("--images", nargs="+", default=["baboon", "barbara", "comic", "zebra", "lenna", "monarch"])
    ap.add_argument("--crop", type=int, default=192)
    ap.add_argument("--factor", type=int, default=2)
    ap.add_argument("--model", default=None, help="model name or checkpoint (default: the shipped default)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = ciaosr.load_model(args.model)
    n, f = args.crop, args.factor
    print(f"model {args.model or 'default'}, {n} x {n} crops, {f} x 1/{f} (width x height), PSNR in dB")
    print(f"{'image':10s} {'model first':>12s} {'resize first':>13s} {'bicubic':>8s}  seconds (model, resize first)")
    gains = []
    for name in args.images:
        with Image.open(Path(args.data_root) / "Set14" / "HR" / f"{name}.png") as im:
            original = im.convert("RGB").crop((0, 0, n, n))
        lr = original.resize((n // f, n), Image.Resampling.BICUBIC)
        target = tensor(original.resize((n, n // f), Image.Resampling.BICUBIC))
        x = tensor(lr)
        with torch.no_grad():
            t0 = time.perf_counter()
            model_first = resize_bicubic(tiled_upsample(model, x, (n, n)), (n // f, n))
            t1 = time.perf_counter()
            resize_first = tiled_upsample(model, resize_bicubic(x, (n // f, n // f)), (n // f, n))
            t2 = time.perf_counter()
        plain = tensor(lr.resize((n, n // f), Image.Resampling.BICUBIC))
        scores = [psnr_liif(to_u8(y)[0], target[0], f, rgb=True, border=0) for y in (model_first, resize_first, plain)]
        gains.append(scores[0] - scores[1])
        print(f"{name:10s} {scores[0]:12.2f} {scores[1]:13.2f} {scores[2]:8.2f}  {t1 - t0:.2f}, {t2 - t1:.2f}")
    print(f"model first - resize first: {min(gains):+.2f} to {max(gains):+.2f} dB")


if __name__ == "__main__":
    main()

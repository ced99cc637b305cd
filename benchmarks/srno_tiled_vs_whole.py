"""How far a tiled SRNO upscale is from the whole-image one (docs/models.md, SRNO card).

SRNO's Galerkin attention sums over all the queries decoded together, so each tile of a
tiled upscale (``ciaosr.inference.tiling``) is its own query set and the result cannot
equal the whole-image decoding. This measures the difference on a real image (a crop of
Set14 ``baboon``, used as the LR) with the full-size ``edsr-baseline-srno`` at random
weights (the project's initialisation, ``torch.manual_seed(0)``; no trained SRNO weights
exist here), at x2 and x4, for several tile sizes: the largest absolute difference and
the PSNR of the tiled output against the whole one, both in [0, 1] RGB before 8-bit
rounding. LIIF (the shipped weights) is measured beside it: every model's tiles differ a
little near the seams, where a tile's encoder lacks the context beyond it; SRNO's differ
everywhere (the mean difference tells them apart).

Measured 2026-12-03 (torch 2.13.0, CPU, one thread), max |diff|, mean |diff|, PSNR:
SRNO x2, tiles of 64 / 96 / 128: 0.0062 / 0.0031 / 0.0030, 0.00145 / 0.00095 / 0.00090,
54.75 / 58.90 / 59.26 dB; x4: 0.0075 / 0.0037 / 0.0036, 0.00146 / 0.00095 / 0.00091,
54.69 / 58.80 / 59.16 dB. LIIF x2: 0.0107 / 0.0026 / 0.0014, 0.00014 / 0.00002 / 0.00001,
67.65 / 80.24 / 88.42 dB; x4: 0.0161 / 0.0049 / 0.0033, 0.00017 / 0.00003 / 0.00001,
65.75 / 77.49 / 85.18 dB.

    CIAOSR_SHARED=../shared nice -n 19 python benchmarks/srno_tiled_vs_whole.py
"""

import math
import os
import sys

import numpy as np
import torch
from PIL import Image

import ciaosr
from ciaosr.inference.tiling import plan_tiles, tiled_upsample


def psnr(a, b):
    mse = float(((a - b) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def main():
    torch.set_num_threads(1)
    shared = os.environ.get("CIAOSR_SHARED", "../shared")
    img = np.asarray(Image.open(os.path.join(shared, "datasets", "Set14", "HR", "baboon.png")).convert("RGB"))
    lr = torch.from_numpy(img[100:260, 100:260].copy()).permute(2, 0, 1)[None].float() / 255  # 160 x 160
    torch.manual_seed(0)
    models = {"edsr-baseline-srno (random)": ciaosr.build_model("edsr-baseline-srno").eval(),
              "edsr-baseline-liif (shipped)": ciaosr.load_model("edsr-baseline-liif").eval()}
    print(f"LR {tuple(lr.shape[-2:])} crop of Set14 baboon, torch {torch.__version__}")
    for name, model in models.items():
        for scale in (2, 4):
            size = (160 * scale, 160 * scale)
            with torch.no_grad():
                whole = model.upsample(lr, size).float()
            for tile in (64, 96, 128):
                plan = plan_tiles(model, "cpu", tile, chunk=30000)
                tiled = tiled_upsample(model, lr, size, plan=plan)
                diff = (tiled - whole).abs()
                print(f"{name} x{scale} tile {tile} (overlap {plan.overlap}): max |diff| {diff.max():.4f}, "
                      f"mean {diff.mean():.5f}, PSNR tiled vs whole {psnr(tiled, whole):.2f} dB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training batches from LIIF's official pipeline (``image-folder`` + ``sr-implicit-
downsampled`` as ``train_edsr-baseline-liif.yaml`` sets them, a shuffling DataLoader),
written as bytes and coordinates for the project's side to score. Runs in the throwaway
environment of README.md beside this file; called by benchmarks/finetune_official_liif.py.
"""

import argparse
import os
import random
import sys

import numpy as np
import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--code", required=True, help="the official LIIF checkout")
    ap.add_argument("--images", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--batches", type=int, default=32)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    images, out = os.path.abspath(a.images), os.path.abspath(a.out)
    sys.path.insert(0, os.path.abspath(a.code))
    import datasets
    from torch.utils.data import DataLoader

    random.seed(a.seed)
    np.random.seed(a.seed)
    torch.manual_seed(a.seed)
    ds = datasets.make({"name": "image-folder", "args": {"root_path": images, "repeat": 20, "cache": "in_memory"}})
    ds = datasets.make({"name": "sr-implicit-downsampled",
                        "args": {"inp_size": 48, "scale_max": 4, "augment": True, "sample_q": 2304}},
                       args={"dataset": ds})
    loader = DataLoader(ds, batch_size=a.batch, shuffle=True, num_workers=0)
    kept = []
    for i, b in enumerate(loader):
        if i == a.batches:
            break
        kept.append({"inp_u8": (b["inp"] * 255).round().to(torch.uint8), "gt_u8": (b["gt"] * 255).round().to(torch.uint8),
                     "coord": b["coord"], "cell": b["cell"]})
    torch.save(kept, out)
    print(out, len(kept), "batches")


if __name__ == "__main__":
    main()

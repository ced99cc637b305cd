"""Make tests/data/official/batches_{liif,mmedit}.pt from the official training pipelines.

Runs in the throwaway environment with the official code that README.md beside this
file describes (the commands are there), never in the project's own.

``liif``: LIIF's ``image-folder`` (cache in_memory) + ``sr-implicit-downsampled``
(``datasets/wrappers.py``), as ``configs/train-div2k/train_edsr-baseline-liif.yaml`` sets
them (scale_max 4, augment, sample_q); ``mmedit``: mmediting 0.11.0's
``LoadImageFromFile``, ``RandomDownSampling``, ``RescaleToZeroOne``, ``Flip`` (horizontal,
vertical), ``RandomTransposeHW``, ``ImageToTensor`` and ``GenerateCoordinateAndCell``, in
the order and with the arguments of the official CiaoSR config
(``configs/001_localimplicitsr_edsr_div2k_...py``). mmedit's package ``__init__`` (a
version check that refuses mmcv 1.7) is bypassed: the pipeline modules are loaded from
their files unmodified.

Every random call the pipeline makes is recorded (``random.*`` for LIIF, ``np.random.*``
for mmediting), so each case holds the draws and the official sample made from them:
``lr`` and ``gt`` as bytes (checked here to be exactly value * 255 of the official
floats), ``coord`` and ``cell`` as the official float32 tensors.
"""

import argparse
import os
import random
import sys
import tempfile

import numpy as np
import torch

from mmedit_code import IMAGE, fake_mmedit_packages, mmedit_sample  # beside this file

# (seed, lr patch, queries): small patches keep the file small; one case at the paper's size.
CASES = [(s, 16, 64) for s in range(8)] + [(100, 48, 2304)]


class Recorder:
    """Wraps the random functions the pipelines call and records what each returns."""

    def __init__(self):
        self.calls = []

    def wrap(self, owner, name):
        fn = getattr(owner, name)

        def recorded(*a, **k):
            out = fn(*a, **k)
            self.calls.append((name, out))
            return out

        setattr(owner, name, recorded)


def as_bytes(x):
    b = (x * 255).round().to(torch.uint8)
    assert torch.equal(b.float() / 255, x), "not bytes / 255"
    return b


DRAW_CALLS = ["uniform", "randint", "randint", "random", "random", "random", "choice"]


def recorded_case(rec, seed, patch, q, lr, gt, coord, cell, first_flip_reverses):
    """One case from the draws ``rec`` recorded (scale, corner row, corner column, three
    flips, queries: both pipelines call in that order) and the official sample.
    ``first_flip_reverses``: the axis the first flip draw reverses, "rows" or "cols"."""
    names = [c[0] for c in rec.calls]
    assert names == DRAW_CALLS, names
    v = [c[1] for c in rec.calls]
    first, second = ("flip_rows", "flip_cols") if first_flip_reverses == "rows" else ("flip_cols", "flip_rows")
    return {
        "seed": seed, "lr_patch": patch, "num_queries": q,
        "draws": {"scale": float(v[0]), "top": int(v[1]), "left": int(v[2]), first: bool(v[3] < 0.5),
                  second: bool(v[4] < 0.5), "transpose": bool(v[5] < 0.5),
                  "queries": torch.from_numpy(np.asarray(v[6], dtype=np.int64))},
        "lr_u8": as_bytes(lr), "gt_u8": as_bytes(gt), "coord": coord.clone(), "cell": cell.clone(),
    }


def liif_cases(code):
    sys.path.insert(0, code)
    import datasets  # noqa: F401  (LIIF's package: registers the datasets)
    from datasets import datasets as registry

    folder = tempfile.mkdtemp()  # image-folder reads a folder: one holding the test image
    os.symlink(IMAGE, os.path.join(folder, os.path.basename(IMAGE)))
    rec = Recorder()
    for name in ("uniform", "randint", "random"):
        rec.wrap(random, name)
    rec.wrap(np.random, "choice")
    out = []
    for seed, patch, q in CASES:
        ds = registry.make({"name": "image-folder", "args": {"root_path": folder, "cache": "in_memory"}})
        w = registry.make({"name": "sr-implicit-downsampled",
                           "args": {"inp_size": patch, "scale_max": 4, "augment": True, "sample_q": q}},
                          args={"dataset": ds})
        random.seed(seed)
        np.random.seed(seed)
        rec.calls.clear()
        s = w[0]
        # LIIF: x0 indexes rows (dim -2), y0 columns; hflip reverses rows, vflip columns.
        out.append(recorded_case(rec, seed, patch, q, s["inp"], s["gt"], s["coord"], s["cell"], "rows"))
    return out, "yinboc/liif @ 4c833f8: datasets/image_folder.py + datasets/wrappers.py (sr-implicit-downsampled)"


def mmedit_cases(code):
    fake_mmedit_packages(code)
    rec = Recorder()
    for name in ("uniform", "randint", "random", "choice"):
        rec.wrap(np.random, name)
    out = []
    for seed, patch, q in CASES:
        rec.calls.clear()
        r = mmedit_sample(code, seed, patch, q)
        # mmediting (HWC arrays): x0 indexes rows, y0 columns; 'horizontal' reverses columns.
        out.append(recorded_case(rec, seed, patch, q, r["lq"], r["gt"], r["coord"], r["cell"], "cols"))
    return out, "mmedit 0.11.0 (PyPI sdist) pipelines, as the official CiaoSR config (caojiezhang/CiaoSR @ adac6df) uses them"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("recipe", choices=["liif", "mmedit"])
    ap.add_argument("--code", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    code = os.path.abspath(a.code)
    cases, source = liif_cases(code) if a.recipe == "liif" else mmedit_cases(code)
    meta = {"recipe": a.recipe, "source": source, "image": os.path.basename(IMAGE), "torch": str(torch.__version__),
            "made_by": "benchmarks/official/make_batch_vectors.py"}
    torch.save({"meta": meta, "cases": cases}, a.out)
    print(a.out, len(cases), "cases")


if __name__ == "__main__":
    main()

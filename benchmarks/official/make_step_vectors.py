"""Make tests/data/official/step_<family>.pt: one official training step on one batch.

Runs in the throwaway environment with the official code that README.md beside this
file describes (the commands are there), never in the project's own.

Each family's own code makes everything: the batch (two samples, seeds 0 and 1, from
the family's training pipeline on div2k_0004_crop.png: LIIF's ``sr-implicit-downsampled``
for LIIF and MetaSR, LTE's and ITSRN's copies of it for theirs, mmediting 0.11's for
CiaoSR), the model (``torch.manual_seed(0)``, then the official constructor with a small
EDSR-baseline encoder and small MLPs so the vectors stay small), and the step: the
official ``train()`` of ``train_liif.py`` / LTE's ``train.py`` / ITSRN's ``train.py``
on a one-batch loader with Adam(lr 1e-4), or the official CiaoSR restorer's
``train_step`` with the config's normalisation and L1 loss. ``.cuda()`` is made a no-op;
no official file is modified.

Stored (parameters with requires_grad False, such as EDSR's fixed mean shift, have no
gradient): the checkpoint before the step in the official file layout, the batch (bytes
for ``inp``/``lq`` and ``gt``, official float32 coordinates and cells), the loss, every
parameter's gradient and the state after the step (official names).
"""

import argparse
import os
import random
import sys

import numpy as np
import torch
from torch.utils.data import default_collate

from make_batch_vectors import as_bytes  # beside this file
from mmedit_code import IMAGE, ciaosr_restorer, fake_mmedit_packages, load_module, mmedit_sample

PATCH, QUERIES, SEEDS, LR = 16, 64, (0, 1), 1e-4
SMALL_EDSR = {"name": "edsr-baseline", "args": {"no_upsampling": True, "n_resblocks": 2, "n_feats": 8}}
MODELS = {
    "liif": {"name": "liif", "args": {"encoder_spec": SMALL_EDSR,
                                      "imnet_spec": {"name": "mlp", "args": {"out_dim": 3, "hidden_list": [16, 16]}}}},
    "metasr": {"name": "metasr", "args": {"encoder_spec": SMALL_EDSR}},
    "lte": {"name": "lte", "args": {"encoder_spec": SMALL_EDSR, "hidden_dim": 16,
                                    "imnet_spec": {"name": "mlp", "args": {"out_dim": 3, "hidden_list": [16, 16]}}}},
    "itsrn": {"name": "ITNSR", "args": {"feat_unfold": True, "local_ensemble": True, "scale_token": True,
                                        "encoder_spec": SMALL_EDSR,
                                        "imnet_spec": {"name": "mlp", "args": {"hidden_list": [16, 16], "act": "gelu"}}}},
}
NORM = {"inp": {"sub": [0.5], "div": [0.5]}, "gt": {"sub": [0.5], "div": [0.5]}}


class NoWriter:
    def add_scalars(self, *a, **k):
        pass


def liif_code_base_step(family, code):
    """LIIF, MetaSR, LTE, ITSRN: the repository's datasets, models and train()."""
    os.chdir(code)
    sys.path.insert(0, code)
    import datasets
    import models
    import utils
    if family == "itsrn":  # ITSRN ships no EDSR: LIIF's edsr.py is registered as its encoder
        load_module(LIIF_CODE, "models.edsr")
    train_mod = __import__("train_liif" if family in ("liif", "metasr") else "train")

    import tempfile
    folder = tempfile.mkdtemp()
    os.symlink(IMAGE, os.path.join(folder, os.path.basename(IMAGE)))
    ds = datasets.make({"name": "image-folder", "args": {"root_path": folder, "cache": "in_memory"}})
    wrapper = datasets.make({"name": "sr-implicit-downsampled",
                             "args": {"inp_size": PATCH, "scale_min": 1, "scale_max": 4, "augment": True,
                                      "sample_q": QUERIES}}, args={"dataset": ds})
    samples = []
    for s in SEEDS:
        random.seed(s)
        np.random.seed(s)
        samples.append(wrapper[0])
    batch = default_collate(samples)

    torch.manual_seed(0)
    model = models.make(MODELS[family])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = utils.make_optimizer(model.parameters(), {"name": "adam", "args": {"lr": LR}})
    train_mod.config = {"data_norm": NORM, "train_dataset": {"batch_size": len(SEEDS),
                                                             "dataset": {"args": {"repeat": 1}}}}
    train_mod.writer = NoWriter()
    args = (1,) if family == "lte" else ()
    loss = train_mod.train([{k: v.clone() for k, v in batch.items()}], model, opt, *args)
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    after = {k: v.clone() for k, v in model.state_dict().items()}
    spec = dict(MODELS[family])
    ckpt = {"model": {**spec, "sd": before}}
    cell_key = "scale" if family == "itsrn" else "cell"
    out_batch = {"inp_u8": as_bytes(batch["inp"]), "gt_u8": as_bytes(batch["gt"]), "coord": batch["coord"],
                 "cell": batch[cell_key] * (2 if family == "itsrn" else 1), "official_cell_key": cell_key}
    return ckpt, out_batch, float(loss), grads, after


def ciaosr_step(code, mmedit_code):
    """The official CiaoSR restorer's train_step, mmediting 0.11 around it."""
    fake_mmedit_packages(mmedit_code)
    samples = []
    for s in SEEDS:
        r = mmedit_sample(mmedit_code, s, PATCH, QUERIES)
        samples.append({k: r[k] for k in ("lq", "gt", "coord", "cell")})
    batch = default_collate(samples)
    torch.manual_seed(0)
    restorer = ciaosr_restorer(code, mmedit_code, mid_channels=8, num_blocks=2, hidden=(16, 16))
    gen = restorer.generator
    before = {k: v.clone() for k, v in gen.state_dict().items()}
    opt = torch.optim.Adam(restorer.parameters(), lr=LR)  # mmcv's build_optimizers for dict(type='Adam', lr=1e-4)
    out = restorer.train_step({k: v.clone() for k, v in batch.items()}, opt)
    grads = {n: p.grad.clone() for n, p in gen.named_parameters() if p.requires_grad}
    after = {k: v.clone() for k, v in gen.state_dict().items()}
    out_batch = {"inp_u8": as_bytes(batch["lq"]), "gt_u8": as_bytes(batch["gt"]), "coord": batch["coord"],
                 "cell": batch["cell"], "official_cell_key": "cell"}
    return before, out_batch, float(out["log_vars"]["loss_pix"]), grads, after


def main():
    global LIIF_CODE
    ap = argparse.ArgumentParser()
    ap.add_argument("family", choices=["liif", "metasr", "lte", "itsrn", "ciaosr"])
    ap.add_argument("--code", required=True)
    ap.add_argument("--mmedit")
    ap.add_argument("--liif", default="liif", help="LIIF's code (its edsr.py is ITSRN's encoder)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    LIIF_CODE = os.path.abspath(a.liif)
    out_path = os.path.abspath(a.out)
    torch.set_num_threads(1)
    torch.Tensor.cuda = lambda self, *args, **kw: self
    if a.family == "ciaosr":
        ckpt, batch, loss, grads, after = ciaosr_step(os.path.abspath(a.code), os.path.abspath(a.mmedit))
    else:
        ckpt, batch, loss, grads, after = liif_code_base_step(a.family, os.path.abspath(a.code))
    meta = {"family": a.family, "lr": LR, "lr_patch": PATCH, "num_queries": QUERIES, "seeds": list(SEEDS),
            "torch": str(torch.__version__), "made_by": "benchmarks/official/make_step_vectors.py"}
    torch.save({"meta": meta, "checkpoint": ckpt, "batch": batch, "loss": loss, "grads": grads, "after": after},
               out_path)
    print(out_path, a.family, "loss", loss, "params", sum(g.numel() for g in grads.values()))


if __name__ == "__main__":
    main()

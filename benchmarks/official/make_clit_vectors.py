"""Make tests/data/official/clit.pth and clit_vectors.pt from the official CLIT code
(jaroslaw1007/CLIT, Chen et al., CVPR 2023, "Cascaded Local Implicit Transformer").

Runs in the throwaway environment that README.md beside this file describes, with a
checkout of https://github.com/jaroslaw1007/CLIT (the commit is recorded in the note),
never in the project's own. The official modules are imported unmodified; ``.cuda()`` is
made a no-op (CPU).

The model: the official ``clit`` class with the structure of the official three-stage
configuration (``configs/train/train_*_clit3.yaml``: three stages, local attention over
7 x 7 neighbours, cell decoding, the sinusoidal positional bias with ``posenc_scale`` 10
and 64 dimensions, a GELU MLP per stage) but small widths (a 2-block, 8-channel
EDSR-baseline, ``base_dim`` 16 with 4 heads, MLPs of two hidden layers of 16) so that the
files stay small. Weights: every trainable tensor in ``named_parameters()`` order from
``torch.Generator().manual_seed(0)``: weights N(0, g^2 / fan_in) (g = 0.7 for
convolutions, 1 otherwise), biases N(0, 0.1^2). The LR inputs are uniform [0, 1) from the
same generator after the weights: 10 x 12, then 4 x 5 for the three-stage case.

Every eval case goes through the official test path: ``test.py`` with ``eval_bsize`` set
(all official test configs set it) calls ``chop_forward(inp, coords, cell, eval_bsize)``,
where ``coords`` are the grids the test wrapper (``sr-implicit-downsampled-cascaded``,
``scale_base`` 4) makes: the scale split by ``sample_system_scale`` (x6 -> 4, 1.5; x18 ->
4, 4, 1.125), one grid per stage, the cell that of the last grid (``test.py`` leaves its
cell clipping commented out). Each is run with ``eval_bsize`` equal to the number of
queries (whole) and 97 (chunks), and checked equal here. The asymmetric case (x2 by
x3.5) is given one grid of that size (the official wrapper makes only square scales;
both factors are below ``scale_base``, so the split has one stage either way).

Stored:

* ``clit.pth``: the official training script's checkpoint layout
  (``{'model': {'name', 'args', 'sd'}, 'optimizer': ..., 'epoch': ...}``);
* ``clit_vectors.pt``: per case the LR, the stage grids, the official prediction (the
  normalised space, the input's bilinear residual included); a training case (the
  official ``train.py`` forward ``model(inp, coords, sample_coord, cell)``: a batch of
  two, three stages at drawn per-stage scales as the wrapper draws them, 120 random
  queries of the last grid per image; the last stage's prediction, the one the loss
  reads); and the official parameter counts of the full-size configurations
  (``configs/train/train_{edsr_baseline,rdn,swinir}_{lit,clit2,clit3}.yaml``).
"""

import argparse
import os
import random

import torch

from model_vectors import enter_code_base, official_order_init, save_pair, seeded_model  # beside this file

SPEC = {"name": "clit", "args": {
    "encoder_spec": {"name": "edsr-baseline", "args": {"no_upsampling": True, "n_resblocks": 2, "n_feats": 8}},
    "imnet_spec": {"name": "mlp", "args": {"out_dim": 3, "hidden_list": [16, 16], "act": "gelu"}},
    "pb_spec": {"name": "posenc", "args": {"posenc_type": "sinusoid", "posenc_scale": 10, "hidden_dims": 64,
                                           "enc_dims": 64, "gamma": 1}},
    "base_dim": 16, "head": 4, "r": 3, "imnet_num": 3, "conv_num": 3, "is_cell": True, "local_attn": True}}
LR_SIZE = (10, 12)
# (LR size, output size, scale given to the test wrapper or None for a given grid)
CASES = [(LR_SIZE, (20, 24), 2), (LR_SIZE, (37, 44), 3.7), (LR_SIZE, (20, 42), None),
         (LR_SIZE, (60, 72), 6), ((4, 5), (72, 90), 18)]
CHUNK = 97


def stage_grids(lr_size, out_size, scale):
    """The test wrapper's grids: sizes ``round(lr * prod(scale_it[:i + 1]))``."""
    import numpy as np
    from datasets.cascaded_wrappers import sample_system_scale

    if scale is None:
        return [out_size]
    split = sample_system_scale(scale, 4)
    grids = [tuple(round(n * np.prod(split[:i + 1])) for n in lr_size) for i in range(len(split))]
    assert grids[-1] == out_size, (grids, out_size)
    return grids


def full_size_counts(models, code):
    import yaml
    out = {}
    for enc in ("edsr_baseline", "rdn", "swinir"):
        for variant in ("lit", "clit2", "clit3"):
            with open(os.path.join(code, "configs", "train", f"train_{enc}_{variant}.yaml")) as f:
                spec = yaml.safe_load(f)["model"]
            model = models.make(spec)
            key = f"{enc.replace('_', '-')} {variant}"
            out[key] = sum(p.numel() for p in model.parameters())
            out[f"{key} encoder"] = sum(p.numel() for p in model.encoder.parameters())
            del model
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--code", required=True, help="a checkout of jaroslaw1007/CLIT")
    ap.add_argument("--out", required=True, help="folder for the two files")
    a = ap.parse_args()
    code, out = os.path.abspath(a.code), os.path.abspath(a.out)
    commit = enter_code_base(code)
    import models
    from utils import make_coord

    model, g, lr = seeded_model(models, SPEC, official_order_init, LR_SIZE)
    lrs = {LR_SIZE: lr, (4, 5): torch.rand(1, 3, 4, 5, generator=g)}
    model.eval()
    cases = []
    for lr_size, size, scale in CASES:
        grids = stage_grids(lr_size, size, scale)
        coords = [make_coord(s, flatten=False).unsqueeze(0) for s in grids]
        cell = torch.tensor([[2 / size[0], 2 / size[1]]])
        inp = (lrs[lr_size] - 0.5) / 0.5
        n = size[0] * size[1]
        with torch.no_grad():
            whole = model.chop_forward(inp, coords, cell, n)
            chunked = model.chop_forward(inp, coords, cell, CHUNK)
        assert torch.equal(whole, chunked) or torch.allclose(whole, chunked, atol=1e-6, rtol=0), "chunks differ"
        cases.append({"lr": lrs[lr_size], "size": size, "grids": grids, "pred": whole[0].clone()})
        print(size, grids, "mean", whole.mean().item(), "std", whole.std().item())

    # the training forward: the wrapper's per-stage scales U(scale_min, scale_max) (clit3:
    # [1, 1, 1] to [4, 4, 2]) on a 10 x 12 LR here, one grid set for the batch, random
    # queries of the last grid; train.py reads the last stage's prediction only
    model.train()
    rng = random.Random(0)
    split = [rng.uniform(1, 4), rng.uniform(1, 4), rng.uniform(1, 2)]
    import numpy as np
    grids = [tuple(round(n * np.prod(split[:i + 1])) for n in LR_SIZE) for i in range(3)]
    lr2 = torch.rand(2, 3, *LR_SIZE, generator=g)
    coords = [make_coord(s, flatten=False).unsqueeze(0).repeat(2, 1, 1, 1) for s in grids]
    flat = coords[-1][0].reshape(-1, 2)
    sample = torch.stack([flat[torch.randperm(flat.shape[0], generator=g)[:120]] for _ in range(2)])
    cell = torch.tensor([[2 / grids[-1][0], 2 / grids[-1][1]]]).repeat(2, 1)
    with torch.no_grad():
        preds = model((lr2 - 0.5) / 0.5, coords, sample, cell)
    train_case = {"lr": lr2, "grids": grids, "coord": sample, "cell": cell, "pred": preds[-1].clone()}
    print("train", grids, preds[-1].mean().item())

    note = (f"Made by benchmarks/official/make_clit_vectors.py with the official CLIT code "
            f"(jaroslaw1007/CLIT @ {commit[:7]}, unmodified; .cuda() a no-op), torch {torch.__version__}, one thread.")
    save_pair(out, "clit", SPEC, model, {"note": note, "cases": cases, "train": train_case,
                                         "params": full_size_counts(models, code)})
    print(note)


if __name__ == "__main__":
    main()

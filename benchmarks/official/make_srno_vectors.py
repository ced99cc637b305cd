"""Make tests/data/official/srno.pth and srno_vectors.pt from the official SRNO code
(2y7c3/Super-Resolution-Neural-Operator, Wei & Zhang, CVPR 2023).

Runs in the throwaway environment that README.md beside this file describes, with a
checkout of https://github.com/2y7c3/Super-Resolution-Neural-Operator (the commit is
recorded in the note), never in the project's own. The official modules are imported
unmodified; ``.cuda()`` is made a no-op (CPU).

The model: the official ``sronet`` class with a small width (16, 2 attention heads) on an
EDSR-baseline of 64 channels (the official ``conv00`` hard-codes 64 encoder channels)
with one residual block, so that the files stay small. Weights: every trainable tensor in
``named_parameters()`` order from ``torch.Generator().manual_seed(0)``: weights
N(0, g^2 / fan_in) (g = 0.7 for 3x3 convolutions, 1 otherwise), biases N(0, 0.1^2), the
LayerNorm weights 1 + N(0, 0.1^2). The LR input is uniform [0, 1) from the same
generator after the weights, 10 x 12, batch 1.

Stored:

* ``srno.pth``: the official training script's checkpoint layout
  (``{'model': {'name', 'args', 'sd'}, 'optimizer': ..., 'epoch': ...}``);
* ``srno_vectors.pt``: the LR; per case the output size and the official prediction
  (normalised space, ``model(inp, coord, cell)`` in eval mode on the whole output grid,
  as the official ``test.py`` without ``eval_bsize``) and the official ``test.py``
  ``batched_predict`` with ``eval_bsize`` 7 (bands of 7 output rows, each band its own
  attention set); a training-mode case (batch of 2, per-image scales, random queries as
  the official ``sr-implicit-downsampled-fast`` picks them); and the official parameter
  counts of the full-size configuration (``configs/train_edsr-sronet.yaml``) and of the
  same with the official RDN.
"""

import argparse
import math
import os

import torch

from model_vectors import enter_code_base, save_pair, seeded_model  # beside this file

SPEC = {"name": "sronet", "args": {"encoder_spec": {"name": "edsr-baseline",
                                                    "args": {"no_upsampling": True, "n_resblocks": 1}},
                                   "width": 16, "blocks": 2}}
LR_SIZE = (10, 12)
CASES = [(20, 24), (37, 44), (20, 42)]
BAND = 7


def official_order_init(model, g):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            if name.endswith(("kln.weight", "vln.weight")):
                p.copy_(1 + torch.randn(p.shape, generator=g) * 0.1)
            elif p.dim() >= 2 and p.shape[-1] > 1:
                p.copy_(torch.randn(p.shape, generator=g) * (0.7 / math.sqrt(p[0].numel())))
            elif p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p[0].numel()))
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--code", required=True, help="a checkout of 2y7c3/Super-Resolution-Neural-Operator")
    ap.add_argument("--out", required=True, help="folder for the two files")
    a = ap.parse_args()
    code, out = os.path.abspath(a.code), os.path.abspath(a.out)
    commit = enter_code_base(code)
    import models
    from test import batched_predict
    from utils import make_coord

    model, g, lr = seeded_model(models, SPEC, official_order_init, LR_SIZE)
    inp = (lr - 0.5) / 0.5

    cases = []
    model.eval()
    for size in CASES:
        coord = make_coord(size, flatten=False).unsqueeze(0)
        cell = torch.tensor([[2 / size[0], 2 / size[1]]])
        with torch.no_grad():
            pred = model(inp, coord, cell)
        banded = batched_predict(model, inp, coord, cell, BAND)
        cases.append({"size": size, "pred": pred[0].permute(1, 2, 0).reshape(-1, 3).clone(),
                      "banded": banded[0].permute(1, 2, 0).reshape(-1, 3).clone()})
        print(size, "mean", pred.mean().item(), "banded differs by", (banded - pred).abs().max().item())

    # the training path: two images at their own scales, h_lr * w_lr random queries each
    # (np.random.choice in sr-implicit-downsampled-fast; a seeded torch permutation here)
    model.train()
    lr2 = torch.rand(2, 3, *LR_SIZE, generator=g)
    coords, cells = [], []
    for size in ((25, 30), (37, 44)):
        c = make_coord(size, flatten=False).view(-1, 2)
        pick = torch.randperm(c.shape[0], generator=g)[:LR_SIZE[0] * LR_SIZE[1]]
        coords.append(c[pick].view(*LR_SIZE, 2))
        cells.append(torch.tensor([2 / size[0], 2 / size[1]]))
    coord2, cell2 = torch.stack(coords), torch.stack(cells)
    with torch.no_grad():
        pred2 = model((lr2 - 0.5) / 0.5, coord2, cell2)
    train_case = {"lr": lr2, "coord": coord2.reshape(2, -1, 2), "cell": cell2,
                  "pred": pred2.permute(0, 2, 3, 1).reshape(2, -1, 3).clone()}

    params = {}
    for enc in ("edsr-baseline", "rdn"):
        full = models.make({"name": "sronet", "args": {"encoder_spec": {"name": enc, "args": {"no_upsampling": True}},
                                                       "width": 256, "blocks": 16}})
        params[enc] = sum(p.numel() for p in full.parameters())
        params[f"{enc} encoder"] = sum(p.numel() for p in full.encoder.parameters())

    note = (f"Made by benchmarks/official/make_srno_vectors.py with the official SRNO code "
            f"(2y7c3/Super-Resolution-Neural-Operator @ {commit[:7]}, unmodified; .cuda() a no-op), "
            f"torch {torch.__version__}, one thread.")
    save_pair(out, "srno", SPEC, model, {"note": note, "lr": lr, "band": BAND, "cases": cases, "train": train_case,
                                         "params": params})
    print(note, params)


if __name__ == "__main__":
    main()

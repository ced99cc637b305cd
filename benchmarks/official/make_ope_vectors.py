"""Make tests/data/official/ope.pth and ope_vectors.pt from the official OPE-SR code
(gaochao-s/ope-sr, Song et al., CVPR 2023).

Runs in the throwaway environment that README.md beside this file describes, with a
checkout of https://github.com/gaochao-s/ope-sr (the commit is recorded in the note),
never in the project's own. The official modules are imported unmodified; ``.cuda()`` is
made a no-op (CPU).

The model: the official ``OPE-net`` with ``max_freq`` 1 (27 coefficients: 3 x 3^2) on the
official ``adaptive-edsr-baseline`` of 27 channels and one residual block, so that the
files stay small (the official configurations: ``max_freq`` 3 on 147 channels). Weights:
every trainable tensor in ``named_parameters()`` order from
``torch.Generator().manual_seed(0)``: weights N(0, 0.7^2 / fan_in), biases N(0, 0.1^2).
The LR input is uniform [0, 1) from the same generator after the weights, 10 x 12.

Stored: ``ope.pth`` in the official training script's checkpoint layout; ``ope_vectors.pt``:
the LR and, per output size, the official prediction (normalised space, the model's
``forward`` on the whole output grid, as its ``inference`` renders; in chunks of 97
queries checked equal here), and the official parameter counts of
``configs/train-div2k-configs/train_{edsr,rdn}-ope-1.yaml``.
"""

import argparse
import os

import torch

from model_vectors import enter_code_base, official_order_init, save_pair, seeded_model  # beside this file

SPEC = {"name": "OPE-net", "args": {"max_freq": 1, "srnet_spec": {"name": "adaptive-edsr-baseline",
                                                                  "args": {"n_feats": 27, "n_resblocks": 1}}}}
LR_SIZE = (10, 12)
CASES = [(20, 24), (37, 44), (20, 42)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--code", required=True, help="a checkout of gaochao-s/ope-sr")
    ap.add_argument("--out", required=True, help="folder for the two files")
    a = ap.parse_args()
    code, out = os.path.abspath(a.code), os.path.abspath(a.out)
    commit = enter_code_base(code)
    import yaml

    import models
    from models.OPE_linearUp import make_coord

    model, _, lr = seeded_model(models, SPEC, official_order_init, LR_SIZE)
    inp = (lr - 0.5) / 0.5
    model.eval()
    cases = []
    for size in CASES:
        coord = make_coord(size).unsqueeze(0)
        with torch.no_grad():
            pred = model(inp, coord)
            chunked = model(inp, coord, bsize=97)
        assert torch.equal(pred, chunked), "official chunks differ"
        cases.append({"size": size, "pred": pred[0].clone()})
        print(size, "mean", pred.mean().item(), "std", pred.std().item())

    params = {}
    for enc in ("edsr", "rdn"):
        with open(os.path.join(code, "configs", "train-div2k-configs", f"train_{enc}-ope-1.yaml")) as f:
            full = models.make(yaml.safe_load(f)["model"])
        params[enc] = sum(p.numel() for p in full.parameters())
        params[f"{enc} trainable"] = sum(p.numel() for p in full.parameters() if p.requires_grad)

    note = (f"Made by benchmarks/official/make_ope_vectors.py with the official OPE-SR code "
            f"(gaochao-s/ope-sr @ {commit[:7]}, unmodified; .cuda() a no-op), torch {torch.__version__}, one thread.")
    save_pair(out, "ope", SPEC, model, {"note": note, "lr": lr, "cases": cases, "params": params})
    print(note, params)


if __name__ == "__main__":
    main()

"""Make tests/data/official/lmf_<variant>.pth and lmf_<variant>_vectors.pt from the
official LMF code (HeZongyao/LMF, CVPR 2024): LM-LIIF (``lmliif``) and LM-LTE (``lmlte``).

Runs in the throwaway environment that README.md beside this file describes, with a
checkout of https://github.com/HeZongyao/LMF (the commit is recorded in the note), never
in the project's own. The official modules are imported unmodified; ``.cuda()`` is made a
no-op (CPU).

For each variant: the official model class with the official config's structure
(``mod_scale``, ``mod_shift``, ``mod_input`` true, local ensemble, cell decoding, 3x3
unfolding for LM-LIIF) but small widths (a 2-block, 8-channel EDSR-baseline, render MLP
width 8 and depth 3, hypernetwork hidden width 24) so that the files stay small. LM-CiaoSR's
official code hard-codes 64 encoder channels, so it is made with ``--swinir`` only (a
64-channel EDSR trunk would take the checkpoint near 1 MB); its other MLPs have one hidden
layer of 16, and it gets one more case: a 52 x 100 LR (more than 48 x 48 pixels: the
official non-local feature is made in crops), whose official non-local feature (every
fourth row and column) and x2 prediction at 5200 random queries of the grid are stored. Weights:
every trainable tensor in ``named_parameters()`` order from
``torch.Generator().manual_seed(0)``: weights N(0, g^2 / fan_in) (g = 0.7 for
convolutions, 1 otherwise), biases N(0, 0.1^2). The LR input is uniform [0, 1) from the
same generator after the weights, 10 x 12, batch 1.

Stored:

* ``lmf_<variant>.pth``: the official training script's checkpoint layout
  (``{'model': {'name', 'args', 'sd'}, 'optimizer': ..., 'epoch': ...}``, ``sd`` the
  official ``state_dict()``);
* ``lmf_<variant>_vectors.pt``: the LR, and for each case the output size, the cell
  multiplier the official ``test.py`` applies (``max(scale / 4, 1)``) and the official
  prediction (normalised space, ``model(inp, coord, cell)`` in eval mode, whole image;
  the same with ``bsize=97`` chunks is checked equal here); a training-mode case (batch
  of 2, per-image scales, random queries: ``query_rgb``, the official training path);
  and the official parameter counts of the full-size configurations
  (``configs/train-lmf/train_*-lm*.yaml``).
"""

import argparse
import os

import torch

from model_vectors import enter_code_base, official_order_init, save_pair, seeded_model  # beside this file

SMALL_EDSR = {"name": "edsr-baseline", "args": {"no_upsampling": True, "n_resblocks": 2, "n_feats": 8}}
SMALL_IMNET = {"name": "lmmlp", "args": {"out_dim": 3, "hidden_dim": 8, "hidden_depth": 3,
                                         "mod_scale": True, "mod_shift": True}}
SMALL_HYPER = {"name": "mlp", "args": {"out_dim": 56, "hidden_list": [24]}}
SMALL_MLP16 = {"name": "mlp", "args": {"out_dim": 256, "hidden_list": [16]}}
SMALL = {
    "lmliif": {"name": "lmliif", "args": {"encoder_spec": SMALL_EDSR, "imnet_spec": SMALL_IMNET,
                                          "hypernet_spec": SMALL_HYPER, "local_ensemble": True,
                                          "feat_unfold": True, "cell_decode": True, "mod_input": True}},
    "lmlte": {"name": "lmlte", "args": {"encoder_spec": SMALL_EDSR, "imnet_spec": SMALL_IMNET,
                                        "hypernet_spec": SMALL_HYPER, "hidden_dim": 16, "local_ensemble": True,
                                        "cell_decode": True, "mod_input": True}},
    "lmciaosr": {"name": "lmciaosr", "args": {"encoder": SMALL_EDSR, "prenet_q": SMALL_MLP16, "hypernet_q": SMALL_HYPER,
                                              "imnet_q": SMALL_IMNET, "imnet_k": SMALL_MLP16, "imnet_v": SMALL_MLP16,
                                              "local_size": 2, "feat_unfold": True, "non_local_attn": True,
                                              "multi_scale": [2], "softmax_scale": 1, "mod_input": True}},
}
# LM-CiaoSR's crop case: LR size and the queries (at x2) it is evaluated at
CROP_LR = (52, 100)
LR_SIZE = (10, 12)
# --swinir: the official SwinIR class (LTE's copy, upsampler 'none': its last layer is a
# 64-channel convolution) with a small trunk, on an LR whose sides are multiples of its window
SMALL_SWINIR = {"img_size": 16, "embed_dim": 12, "depths": [2], "num_heads": [2], "window_size": 4, "mlp_ratio": 2.0}
SWINIR_LR = (12, 16)
SWINIR_CASES = [(24, 32), (44, 59), (24, 56), (72, 96)]
# (output size, whether it is past the training range: test.py's cell multiplier then applies)
CASES = [(20, 24), (37, 44), (20, 42), (60, 72)]
CHUNK = 97


def full_size_counts(models, variant, code):
    """Parameter counts of the official configurations (train-lmf yaml files)."""
    import yaml
    out = {}
    for enc in ("edsr-baseline", "rdn", "swinir"):
        with open(os.path.join(code, "configs", "train-lmf", f"train_{enc}-{variant}.yaml")) as f:
            spec = yaml.safe_load(f)["model"]
        model = models.make(spec)
        out[enc] = sum(p.numel() for p in model.parameters())
        out[f"{enc} trainable"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
        out[f"{enc} encoder"] = sum(p.numel() for p in model.encoder.parameters())
    return out


def crop_case(model, g, make_coord):
    """LM-CiaoSR on an LR of more than 48 x 48 pixels (non-local feature in crops)."""
    model.eval()
    lr = torch.rand(1, 3, *CROP_LR, generator=g)
    size = (2 * CROP_LR[0], 2 * CROP_LR[1])
    n = CROP_LR[0] * CROP_LR[1]  # the official forward reads the cells of the first h * w queries
    pick = torch.randperm(size[0] * size[1], generator=g)[:n]
    coord = make_coord(size)[pick].unsqueeze(0)
    cell = torch.tensor([2 / size[0], 2 / size[1]]).expand(1, n, 2).contiguous()
    with torch.no_grad():
        pred = model((lr - 0.5) / 0.5, coord, cell)
    print("lmciaosr crop case", CROP_LR, "mean", pred.mean().item())
    return {"crop": {"lr": lr, "coord": coord, "cell": cell, "pred": pred[0].clone(),
                     "non_local_every4": model.non_local_feat[0, :, ::4, ::4].clone()}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("variant", choices=sorted(SMALL))
    ap.add_argument("--code", required=True, help="a checkout of HeZongyao/LMF")
    ap.add_argument("--out", required=True, help="folder for the two files")
    ap.add_argument("--swinir", action="store_true", help="on a small official SwinIR (files lmf_<variant>_swinir*)")
    a = ap.parse_args()
    code, out = os.path.abspath(a.code), os.path.abspath(a.out)
    commit = enter_code_base(code)
    import models
    from utils import make_coord

    spec, init, lr_size, sizes, stem = SMALL[a.variant], official_order_init, LR_SIZE, CASES, f"lmf_{a.variant}"
    if a.variant == "lmciaosr" and not a.swinir:
        ap.error("lmciaosr is made with --swinir (its official code needs a 64-channel trunk)")
    if a.swinir:
        from models.swinir import SwinIR

        enc_key = "encoder" if a.variant == "lmciaosr" else "encoder_spec"
        spec = {**spec, "args": {**spec["args"], enc_key: {"name": "swinir", "args": {"no_upsampling": True}}}}
        lr_size, sizes, stem = SWINIR_LR, SWINIR_CASES, f"{stem}_swinir"

        def init(model, g):  # the small trunk in place of the full one, before the draw
            model.encoder = SwinIR(**SMALL_SWINIR, upsampler="none")
            official_order_init(model, g)
    model, g, lr = seeded_model(models, spec, init, lr_size)
    inp = (lr - 0.5) / 0.5

    cases = []
    model.eval()
    for size in sizes:
        scale = size[0] / lr_size[0]  # test.py's scale (the row ratio)
        mult = max(scale / 4, 1)
        coord = make_coord(size).unsqueeze(0)
        cell = torch.ones_like(coord)
        cell[:, :, 0] *= 2 / size[0]
        cell[:, :, 1] *= 2 / size[1]
        with torch.no_grad():
            pred = model(inp, coord, cell * mult)
            chunked = model(inp, coord, cell * mult, bsize=CHUNK)
        assert torch.equal(pred, chunked) or torch.allclose(pred, chunked, atol=1e-6, rtol=0), "official chunks differ"
        cases.append({"size": size, "cell_mult": mult, "pred": pred[0].clone()})
        print(a.variant, size, "x", mult, "mean", pred.mean().item())

    # the training path (query_rgb): a batch of two images at their own scales, h * w random
    # queries each (as the official configs sample: 2304 = 48 x 48; LM-LTE's modulations
    # need exactly that many with a batch above 1, a view of cell[:, :h * w])
    model.train()
    if a.swinir:  # SwinIR's stochastic depth (drop_path_rate 0.1) would make the training output random
        model.encoder.eval()
    lr2 = torch.rand(2, 3, *lr_size, generator=g)
    coords, cells, n = [], [], lr_size[0] * lr_size[1]
    for size in (((30, 40), (44, 59)) if a.swinir else ((25, 30), (37, 44))):
        c = make_coord(size)
        pick = torch.randperm(c.shape[0], generator=g)[:n]
        coords.append(c[pick])
        cells.append(torch.tensor([2 / size[0], 2 / size[1]]).expand(n, 2))
    coord2, cell2 = torch.stack(coords), torch.stack(cells).contiguous()
    with torch.no_grad():
        pred2 = model((lr2 - 0.5) / 0.5, coord2, cell2)
    train_case = {"lr": lr2, "coord": coord2, "cell": cell2, "pred": pred2.clone()}

    extra = crop_case(model, g, make_coord) if a.variant == "lmciaosr" else {}

    note = (f"Made by benchmarks/official/make_lmf_vectors.py {a.variant}{' --swinir' * a.swinir} with the official LMF code "
            f"(HeZongyao/LMF @ {commit[:7]}, unmodified; .cuda() a no-op), torch {torch.__version__}, one thread.")
    save_pair(out, stem, spec, model, {"note": note, "lr": lr, "cases": cases, "train": train_case, **extra,
                                                    "params": full_size_counts(models, a.variant, code)})
    print(note)


if __name__ == "__main__":
    main()

"""What the model-vector scripts beside this file share (make_lmf_vectors.py,
make_srno_vectors.py): entering an official LIIF-style code base, and saving its
checkpoint in the official training scripts' layout beside the vectors."""

import math
import os
import subprocess
import sys

import torch


def enter_code_base(code: str) -> str:
    """Import the official modules from the checkout ``code`` (its working folder, first on
    ``sys.path``), on the CPU (``.cuda()`` a no-op) with one thread; its commit."""
    commit = subprocess.run(["git", "-C", code, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    torch.set_num_threads(1)
    torch.Tensor.cuda = lambda self, *args, **kw: self
    os.chdir(code)
    sys.path.insert(0, code)
    return commit


def official_order_init(model, g):
    """Every trainable tensor in ``named_parameters()`` order from ``g``: weights
    N(0, gain^2 / fan_in), gain 0.7 for convolutions and 1 otherwise; biases N(0, 0.1^2)."""
    with torch.no_grad():
        for _, p in model.named_parameters():
            if not p.requires_grad:
                continue
            if p.dim() >= 2:
                gain = 0.7 if p.dim() == 4 else 1.0
                p.copy_(torch.randn(p.shape, generator=g) * (gain / math.sqrt(p[0].numel())))
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def seeded_model(models, spec: dict, init, lr_size) -> tuple:
    """The official ``models.make(spec)`` with weights drawn by ``init(model, g)`` from
    ``g = torch.Generator().manual_seed(0)``, then a uniform [0, 1) LR of ``lr_size`` from
    the same generator: (model, g, lr)."""
    model = models.make(spec)
    g = torch.Generator().manual_seed(0)
    init(model, g)
    return model, g, torch.rand(1, 3, *lr_size, generator=g)


def save_pair(out: str, stem: str, spec: dict, model, vectors: dict) -> None:
    """``<stem>.pth`` (``{'model': {'name', 'args', 'sd'}, 'optimizer', 'epoch'}``, as the
    official train.py saves) and ``<stem>_vectors.pt`` (``vectors`` with the official key
    list added)."""
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save({"model": {**spec, "sd": sd}, "optimizer": {}, "epoch": 1}, os.path.join(out, f"{stem}.pth"))
    vectors = {**vectors, "official_keys": [[k, list(v.shape)] for k, v in sd.items()]}
    torch.save(vectors, os.path.join(out, f"{stem}_vectors.pt"))

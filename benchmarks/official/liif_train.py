"""The official LIIF trainer (``train_liif.py``'s ``main``) on a folder of images, from a
seed, on the CPU. Runs in the throwaway environment of README.md beside this file; called
by benchmarks/train_vs_official.py.

The config is the official ``train_edsr-baseline-liif.yaml`` with: the given folder
(``image-folder``, cache in_memory, ``repeat`` chosen so one epoch is ``--epoch-iters``
iterations), the given batch size, a constant learning rate (no ``multi_step_lr``) and no
validation. ``torch.manual_seed(seed)`` (and Python's and NumPy's) before ``main`` fix
the initial weights and the data order; the same initial weights are written first, in
the official checkpoint layout, to ``--init`` for the other side to start from (not
inside ``<out>``: the official code asks before reusing a folder that exists).
``--init-from`` starts from an official checkpoint's weights instead (fine-tuning; the
optimizer is new, as ``ciaosr train``'s ``init.checkpoint`` makes it).
The official code logs each epoch's mean training loss to ``<out>/log.txt`` and saves
``<out>/epoch-last.pth``.
"""

import argparse
import os
import random
import sys

import numpy as np
import torch
import yaml


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--code", required=True, help="the official LIIF checkout")
    ap.add_argument("--images", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--init", required=True, help="where to write the initial weights")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--iterations", type=int, default=1000)
    ap.add_argument("--epoch-iters", type=int, default=100)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--init-from", help="start from this official checkpoint's weights (fresh Adam), not a seeded init")
    a = ap.parse_args()
    images = os.path.abspath(a.images)
    n = len(os.listdir(images))
    samples = a.epoch_iters * a.batch
    if samples % n or a.iterations % a.epoch_iters:
        sys.exit(f"need epoch_iters x batch ({samples}) divisible by the {n} images, and iterations by epoch_iters")
    code, out, init_path = os.path.abspath(a.code), os.path.abspath(a.out), os.path.abspath(a.init)
    with open(os.path.join(code, "configs", "train-div2k", "train_edsr-baseline-liif.yaml")) as f:
        config = yaml.safe_load(f)
    config["train_dataset"]["dataset"]["args"].update(root_path=images, repeat=samples // n)
    config["train_dataset"]["batch_size"] = a.batch
    config["val_dataset"] = None
    config["optimizer"]["args"]["lr"] = a.lr
    config["multi_step_lr"] = None
    config["epoch_max"] = a.iterations // a.epoch_iters
    config["epoch_val"] = None
    config["epoch_save"] = None
    os.chdir(code)
    sys.path.insert(0, code)
    os.environ["CUDA_VISIBLE_DEVICES"] = "0"  # one device: no DataParallel
    torch.Tensor.cuda = lambda self, *args, **kw: self
    torch.nn.Module.cuda = lambda self, *args, **kw: self
    import models
    import train_liif

    def seed_all():
        random.seed(a.seed)
        np.random.seed(a.seed)
        torch.manual_seed(a.seed)

    if a.init_from:
        checkpoint = torch.load(a.init_from, map_location="cpu")["model"]
        make = models.make

        def make_from_checkpoint(spec, *args, **kwargs):
            model = make(spec, *args, **kwargs)
            if spec is config["model"]:
                model.load_state_dict(checkpoint["sd"])
            return model

        models.make = make_from_checkpoint
    seed_all()
    init = models.make(config["model"])
    torch.save({"model": {**config["model"], "sd": init.state_dict()}}, init_path)
    seed_all()  # main() builds the same weights again, then the loader shuffles from here
    train_liif.main(config, out)


if __name__ == "__main__":
    main()

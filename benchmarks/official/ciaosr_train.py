"""The official CiaoSR model and training pipeline driven by a minimal loop (instead of
mmcv's runner), on the CPU. Runs in the throwaway environment of README.md beside this
file; called by benchmarks/train_vs_official.py.

What runs is official: the restorer of configs/001_localimplicitsr_edsr_div2k_...py
(EDSR 64 x 16, the three MLPs [256] x 4, rgb_mean, L1) and its ``train_step`` (normalise,
forward, loss, zero_grad, backward, Adam step), and mmediting 0.11's train_pipeline on
each image. The loop is ours: it walks the images in a fresh random order each pass
(the order ``RepeatDataset`` + a shuffling sampler would give), collates ``--batch``
samples, and keeps Adam's learning rate constant. Seeds: ``torch.manual_seed(seed)``
before the model (the initial weights, written to ``--init`` as an mmediting
checkpoint), NumPy's for the pipeline and the order. Logs the mean loss of every
``--log-every`` iterations to ``<out>/log.jsonl``; saves ``<out>/last.pth``.
"""

import argparse
import json
import os
import time

import numpy as np
import torch
from torch.utils.data import default_collate

from mmedit_code import ciaosr_restorer, fake_mmedit_packages, mmedit_sample  # beside this file


def save(generator, path):
    torch.save({"meta": {"note": "official CiaoSR generator, minimal loop"},
                "state_dict": {f"generator.{k}": v for k, v in generator.state_dict().items()}}, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--code", required=True, help="the official CiaoSR checkout")
    ap.add_argument("--mmedit", required=True, help="mmedit 0.11.0's source")
    ap.add_argument("--images", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--init", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--lr", type=float, default=1e-4)
    a = ap.parse_args()
    code, mmedit, out = os.path.abspath(a.code), os.path.abspath(a.mmedit), os.path.abspath(a.out)
    os.makedirs(out, exist_ok=True)
    images = sorted(os.path.join(os.path.abspath(a.images), f) for f in os.listdir(a.images))
    torch.Tensor.cuda = lambda self, *args, **kw: self
    fake_mmedit_packages(mmedit)
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    restorer = ciaosr_restorer(code, mmedit)
    save(restorer.generator, os.path.abspath(a.init))
    restorer.train()
    opt = torch.optim.Adam(restorer.parameters(), lr=a.lr)  # mmcv's build_optimizers for dict(type='Adam', lr=...)
    order, losses, t0 = [], [], time.time()
    with open(os.path.join(out, "log.jsonl"), "w") as log:
        for step in range(1, a.iterations + 1):
            samples = []
            for _ in range(a.batch):
                if not order:
                    order = list(np.random.permutation(len(images)))
                r = mmedit_sample(mmedit, None, 48, 2304, image=images[order.pop()])
                samples.append({k: r[k] for k in ("lq", "gt", "coord", "cell")})
            result = restorer.train_step(default_collate(samples), opt)
            losses.append(float(result["log_vars"]["loss_pix"]))
            if step % a.log_every == 0:
                log.write(json.dumps({"step": step, "loss": sum(losses) / len(losses),
                                      "time": time.time() - t0}) + "\n")
                log.flush()
                losses = []
    save(restorer.generator, os.path.join(out, "last.pth"))


if __name__ == "__main__":
    main()

"""Fine-tuning keeps what it starts from: the official LIIF EDSR-baseline checkpoint,
trained on by ``ciaosr train`` at the last learning rate of its schedule (1e-4 halved
four times: 6.25e-6), loses no PSNR; and its L1 loss is the same on our training batches
as on batches from LIIF's official pipeline.

1. ``ciaosr eval`` of the checkpoint: Set5 and Set14, x2, x3, x4 (LIIF protocol);
2. ``ciaosr train`` from it: ``--iterations`` (300) at ``--batch`` (16), constant lr
   6.25e-6, on the images of side_by_side.py;
   or, with ``--trainer official``, LIIF's own ``train_liif.py`` from it with the same
   settings (benchmarks/official/liif_train.py ``--init-from``; needs
   ``--official-python`` and ``--official-code``);
3. ``ciaosr eval`` of the result, and the differences;
4. the checkpoint's loss (L1 in its normalised space, as in training) on ``--batches``
   batches of our pipeline (data.recipe liif) and as many from LIIF's official pipeline
   (benchmarks/official/liif_batches.py, with ``--official-python`` and
   ``--official-code``; skipped without them): mean and standard error of each.

    python benchmarks/finetune_official_liif.py --out /tmp/finetune \\
        --official-python /tmp/official/venv/bin/python --official-code /tmp/official
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from machine_info import machine_summary  # noqa: E402
from side_by_side import default_images, eval_command, psnr_table, shared_root  # noqa: E402

import ciaosr  # noqa: E402
from ciaosr.data.train_dataset import SRTrainDataset  # noqa: E402

LAST_LR = 1e-4 * 0.5 ** 4


def run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")


def evaluate(model: str, out_json: Path, threads: int) -> dict[str, float]:
    run(eval_command(model, ["Set5", "Set14"], [2, 3, 4], "liif", threads, out_json))
    return psnr_table(out_json)


def batch_losses(model, batches) -> list[float]:
    out = []
    with torch.no_grad():
        for b in batches:
            pred = model(b["inp_u8"].float() / 255, b["coord"], b["cell"])
            out.append(F.l1_loss(pred, model.normalise_target(b["gt_u8"].float() / 255)).item())
    return out


def our_batches(images: Path, n: int, size: int) -> list[dict]:
    ds = SRTrainDataset([images], seed=0, recipe="liif")
    out = []
    for i in range(n):
        samples = [ds[i * size + j] for j in range(size)]
        out.append({"inp_u8": torch.stack([(s["lr"] * 255).round() for s in samples]).to(torch.uint8),
                     "gt_u8": torch.stack([(s["gt"] * 255).round() for s in samples]).to(torch.uint8),
                     "coord": torch.stack([s["coord"] for s in samples]),
                     "cell": torch.stack([s["cell"] for s in samples])})
    return out


def mean_se(xs: list[float]) -> tuple[float, float]:
    m = sum(xs) / len(xs)
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1) / len(xs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=str(shared_root() / "weights/liif-edsr-baseline/edsr-baseline-liif.pth"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--images")
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--batches", type=int, default=32, help="batches of 16 per pipeline for the loss comparison")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--trainer", choices=["ours", "official"], default="ours")
    ap.add_argument("--skip-loss", action="store_true", help="skip step 4 (the loss on both pipelines' batches)")
    ap.add_argument("--official-python")
    ap.add_argument("--official-code")
    a = ap.parse_args()
    if a.trainer == "official" and not (a.official_python and a.official_code):
        sys.exit("--trainer official needs --official-python and --official-code")
    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    images = Path(a.images).resolve() if a.images else default_images(out)
    torch.set_num_threads(a.threads)
    res = {"date": time.strftime("%Y-%m-%d"), "machine": machine_summary(), "checkpoint": a.checkpoint,
           "trainer": a.trainer, "seed": a.seed, "iterations": a.iterations, "batch": a.batch, "lr": LAST_LR,
           "images": len(list(images.iterdir()))}
    if not a.skip_loss:
        loss_comparison(a, images, out, res)

    # 1-3. eval, fine-tune, eval
    res["before"] = evaluate(a.checkpoint, out / "eval_before.json", a.threads)
    t0 = time.time()
    finetuned = (official_finetune if a.trainer == "official" else our_finetune)(a, images, out)
    res["train_s"] = time.time() - t0
    res["after"] = evaluate(str(finetuned), out / "eval_after.json", a.threads)
    res["delta"] = {k: res["after"][k] - res["before"][k] for k in res["before"]}
    (out / "results.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))


def loss_comparison(a, images: Path, out: Path, res: dict) -> None:
    """Step 4: the checkpoint's loss on our batches and on the official pipeline's (forward only)."""
    model = ciaosr.load_model(a.checkpoint)
    ours = batch_losses(model, our_batches(images, a.batches, 16))
    res["loss_ours_batches"] = mean_se(ours)
    if a.official_python and a.official_code:
        dump = out / "official_batches.pt"
        run([a.official_python, str(REPO / "benchmarks/official/liif_batches.py"), "--code",
             str(Path(a.official_code) / "liif"), "--images", str(images), "--out", str(dump),
             "--batches", str(a.batches)])
        res["loss_official_batches"] = mean_se(batch_losses(model, torch.load(dump, weights_only=True)))
    (out / "results.json").write_text(json.dumps(res, indent=1))


def our_finetune(a, images: Path, out: Path) -> Path:
    sets = {"data_root": str(images.parent), "data.train": f"[{images.name}]", "train.batch_size": a.batch,
            "train.iterations": a.iterations, "train.save_every": a.iterations, "train.log_every": 50,
            "optimizer.lr": LAST_LR, "scheduler.type": "constant", "init.checkpoint": a.checkpoint,
            "val.every": "null", "data.num_workers": 1, "name": "finetune", "output_dir": str(out),
            "seed": a.seed}
    cmd = [sys.executable, "-m", "ciaosr", "train", "--config", str(REPO / "configs/edsr-baseline-liif.yaml"),
           "--threads", str(a.threads)]
    for k, v in sets.items():
        cmd += ["--set", f"{k}={v}"]
    run(cmd)
    return out / "finetune" / "last.safetensors"


def official_finetune(a, images: Path, out: Path) -> Path:
    """LIIF's train_liif.py from the checkpoint: one epoch = 50 iterations (a log line each)."""
    run_dir = out / "official"
    if run_dir.exists():
        sys.exit(f"{run_dir} exists: the official trainer would ask before reusing it; remove it first")
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads)}
    proc = subprocess.run([a.official_python, str(REPO / "benchmarks/official/liif_train.py"),
                           "--code", str(Path(a.official_code) / "liif"), "--images", str(images),
                           "--out", str(run_dir), "--init", str(out / "official_init.pth"),
                           "--init-from", a.checkpoint, "--seed", str(a.seed), "--batch", str(a.batch),
                           "--iterations", str(a.iterations), "--epoch-iters", "50", "--lr", str(LAST_LR)],
                          env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode:
        sys.exit(f"the official trainer failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return run_dir / "epoch-last.pth"


if __name__ == "__main__":
    main()

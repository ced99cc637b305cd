"""`ciaosr train` beside the official trainer, from the same initial weights.

For each seed, the official trainer (LIIF's ``train_liif.py``, or the official CiaoSR
restorer driven by a minimal loop: benchmarks/official/) and ``ciaosr train`` run side by
side, one thread each, on the same images with the same batch size, learning rate
(constant) and number of iterations; ours starts from the initial weights the official
side drew (``init.checkpoint``). Both results are then scored by ``ciaosr eval``
(Set5 and Set14 x4, the protocol of the family's papers). The loss curves (mean of each
window of ``--log-every`` iterations) and the scores go to ``<out>/results.json``,
``<out>/results.md`` and ``<out>/curves.png``.

The official side runs with ``--official-python`` (the throwaway environment of
benchmarks/official/README.md) and ``--official-code`` (its checkouts: ``liif`` for
LIIF; ``CiaoSR`` and ``mmedit-0.11.0`` for CiaoSR).

    python benchmarks/train_vs_official.py --family liif --iterations 1000 --batch 4 --seeds 0 1 \\
        --official-python /tmp/official/venv/bin/python --official-code /tmp/official --out /tmp/tvo/liif

Images: ``--images`` (a folder; default: one made of links to 40 of the shared training
images at least 193 pixels a side: the 6 of DIV2K-mini and Flickr2K-mini, and the first
34 such of T91; 40 so that LIIF's epochs are whole batches).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from machine_info import machine_summary  # noqa: E402
from side_by_side import default_images, eval_command, psnr_table  # noqa: E402

OFFICIAL = REPO / "benchmarks" / "official"
CONFIG = {"liif": "configs/edsr-baseline-liif.yaml", "ciaosr": "configs/edsr-baseline-ciaosr.yaml"}
PROTOCOL = {"liif": "liif", "ciaosr": "mmedit"}


def official_command(a, family: str, images: Path, run: Path, init: Path, seed: int) -> list[str]:
    code = Path(a.official_code)
    common = ["--images", str(images), "--out", str(run), "--init", str(init), "--seed", str(seed),
              "--batch", str(a.batch), "--iterations", str(a.iterations), "--lr", str(a.lr)]
    if family == "liif":
        return [a.official_python, str(OFFICIAL / "liif_train.py"), "--code", str(code / "liif"),
                "--epoch-iters", str(a.log_every)] + common
    return [a.official_python, str(OFFICIAL / "ciaosr_train.py"), "--code", str(code / "CiaoSR"),
            "--mmedit", str(code / "mmedit-0.11.0"), "--log-every", str(a.log_every)] + common


def our_command(a, family: str, images: Path, out: Path, init: Path, seed: int) -> list[str]:
    sets = {"data_root": str(images.parent), "data.train": f"[{images.name}]", "train.batch_size": a.batch,
            "train.iterations": a.iterations, "train.save_every": a.iterations, "train.log_every": a.log_every,
            "optimizer.lr": a.lr, "scheduler.type": "constant", "init.checkpoint": str(init), "seed": seed,
            "val.every": "null", "data.num_workers": 2, "name": f"ours_seed{seed}", "output_dir": str(out)}
    cmd = [sys.executable, "-m", "ciaosr", "train", "--config", str(REPO / CONFIG[family]), "--threads", "1"]
    for k, v in sets.items():
        cmd += ["--set", f"{k}={v}"]
    return cmd


def official_losses(family: str, run: Path) -> list[tuple[int, float]]:
    if family == "liif":  # "epoch 3/10, train: loss=0.1234, ..." per epoch of log_every iterations
        out = []
        for line in (run / "log.txt").read_text().splitlines():
            if line.startswith("epoch ") and "train: loss=" in line:
                epoch = int(line.split()[1].split("/")[0])
                out.append((epoch, float(line.split("train: loss=")[1].split(",")[0])))
        return out
    return [(r["step"], r["loss"]) for r in map(json.loads, (run / "log.jsonl").read_text().splitlines())]


def our_losses(run: Path) -> list[tuple[int, float]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in rows if "loss" in r]


def evaluate(model: Path, family: str, out_json: Path, datasets: list[str]) -> subprocess.Popen:
    cmd = eval_command(model, datasets, [4], PROTOCOL[family], 1, out_json)
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def update_agreement(init: Path, official: Path, ours: Path) -> dict[str, float]:
    """How alike the two runs moved the weights from their shared start: the median over
    tensors of the cosine between the official and our update, and the distance of the
    updates relative to the official one's size (all tensors together)."""
    import statistics

    import torch

    import ciaosr

    start, a, b = (ciaosr.load_model(p).state_dict() for p in (init, official, ours))
    cosines, dist, size = [], 0.0, 0.0
    for k, w0 in start.items():
        if not w0.is_floating_point():
            continue
        da, db = (a[k] - w0).flatten().double(), (b[k] - w0).flatten().double()
        if da.norm() > 0 and db.norm() > 0:
            cosines.append(float(torch.dot(da, db) / (da.norm() * db.norm())))
        dist += float((da - db).norm() ** 2)
        size += float(da.norm() ** 2)
    return {"update_cosine_median": statistics.median(cosines), "update_distance_relative": (dist / size) ** 0.5}


def wait(proc: subprocess.Popen, what: str) -> None:
    _, err = proc.communicate()
    if proc.returncode:
        sys.exit(f"{what} failed ({proc.returncode}): {err[-2000:] if err else ''}")


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for seed, r in results["runs"].items():
        for side, style in (("official", "-"), ("ours", "--")):
            steps, losses = zip(*r[side]["losses"])
            ax.plot(steps, losses, style, label=f"{side}, seed {seed}")
    ax.set_xlabel("iteration")
    ax.set_ylabel(f"training L1 loss (mean of {results['log_every']} iterations)")
    ax.set_title(f"{results['family']}: official trainer vs ciaosr train, batch {results['batch']}, lr {results['lr']:g}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def markdown(results: dict) -> str:
    keys = list(next(iter(results["runs"].values()))["official"]["psnr"])
    lines = [f"| seed | trainer | {' | '.join(keys)} | last loss | wall (s) |",
             "|---|---|" + "---|" * (len(keys) + 2)]
    for seed, r in results["runs"].items():
        for side in ("official", "ours"):
            s = r[side]
            lines.append(f"| {seed} | {side} | " + " | ".join(f"{s['psnr'][k]:.3f}" for k in keys)
                         + f" | {s['losses'][-1][1]:.4f} | {s['wall_s']:.0f} |")
    for seed, r in results["runs"].items():
        if "agreement" in r:
            g = r["agreement"]
            lines.append(f"\nseed {seed}: the updates from the shared start, official vs ours: median cosine "
                         f"{g['update_cosine_median']:.2f} over tensors, distance {g['update_distance_relative']:.2f} "
                         f"of the official update's size")
    for k in keys:
        off = [r["official"]["psnr"][k] for r in results["runs"].values()]
        ours = [r["ours"]["psnr"][k] for r in results["runs"].values()]
        lines.append(f"\n{k}: official mean {sum(off) / len(off):.3f} (seed spread {max(off) - min(off):.3f}), "
                     f"ours mean {sum(ours) / len(ours):.3f} (spread {max(ours) - min(ours):.3f}), "
                     f"difference of means {sum(ours) / len(ours) - sum(off) / len(off):+.3f} dB")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", choices=list(CONFIG), required=True)
    ap.add_argument("--official-python", required=True)
    ap.add_argument("--official-code", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--images")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--iterations", type=int, default=1000)
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--eval-datasets", nargs="+", default=["Set5", "Set14"])
    ap.add_argument("--summarise", action="store_true",
                    help="train nothing: redo results.md and curves.png from <out>/results.json (and the update agreement)")
    a = ap.parse_args()
    out = Path(a.out).resolve()
    if a.summarise:
        results = json.loads((out / "results.json").read_text())
        for seed, r in results["runs"].items():
            model = "epoch-last.pth" if results["family"] == "liif" else "last.pth"
            r["agreement"] = update_agreement(out / f"init_seed{seed}.pth", out / f"official_seed{seed}" / model,
                                              out / f"ours_seed{seed}" / "last.safetensors")
        (out / "results.json").write_text(json.dumps(results, indent=1))
        finish(results, out)
        return
    out.mkdir(parents=True, exist_ok=True)
    images = Path(a.images).resolve() if a.images else default_images(out)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    results = {"family": a.family, "batch": a.batch, "iterations": a.iterations, "lr": a.lr,
               "log_every": a.log_every, "images": len(list(images.iterdir())), "machine": machine_summary(),
               "date": time.strftime("%Y-%m-%d"), "runs": {}}
    for seed in a.seeds:
        run_off, init = out / f"official_seed{seed}", out / f"init_seed{seed}.pth"
        ours_dir = out / f"ours_seed{seed}"
        # the official side draws the initial weights; ours waits for them, then both train side by side
        t0 = time.time()
        off = subprocess.Popen(official_command(a, a.family, images, run_off, init, seed), env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        while not init.exists() and off.poll() is None:
            time.sleep(1)
        t1 = time.time()
        ours = subprocess.Popen(our_command(a, a.family, images, out, init, seed), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wait(ours, "ciaosr train")
        t_ours = time.time() - t1
        wait(off, "the official trainer")
        t_off = time.time() - t0
        off_model = run_off / ("epoch-last.pth" if a.family == "liif" else "last.pth")
        e1 = evaluate(off_model, a.family, out / f"eval_official_seed{seed}.json", a.eval_datasets)
        e2 = evaluate(ours_dir / "last.safetensors", a.family, out / f"eval_ours_seed{seed}.json", a.eval_datasets)
        wait(e1, "eval (official)")
        wait(e2, "eval (ours)")
        steps = a.log_every if a.family == "liif" else 1  # LIIF logs per epoch of log_every iterations
        results["runs"][str(seed)] = {
            "official": {"losses": [(s * steps, v) for s, v in official_losses(a.family, run_off)],
                         "psnr": psnr_table(out / f"eval_official_seed{seed}.json"), "wall_s": t_off},
            "ours": {"losses": our_losses(ours_dir), "psnr": psnr_table(out / f"eval_ours_seed{seed}.json"),
                     "wall_s": t_ours},
            "agreement": update_agreement(init, off_model, ours_dir / "last.safetensors"),
        }
        (out / "results.json").write_text(json.dumps(results, indent=1))
    finish(results, out)


def finish(results: dict, out: Path) -> None:
    (out / "results.md").write_text(markdown(results))
    print(markdown(results))
    try:
        plot(results, out / "curves.png")
    except ImportError:
        print("matplotlib is not installed: no curves.png (pip install matplotlib)")


if __name__ == "__main__":
    main()

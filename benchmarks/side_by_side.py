"""What the side-by-side benchmarks (train_vs_official.py, finetune_official_liif.py)
share: their training images (links to shared images in one folder) and scoring with
``ciaosr eval``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def shared_root() -> Path:
    return Path(os.environ.get("CIAOSR_SHARED", REPO.parent / "shared"))


def default_images(out: Path) -> Path:
    """40 links: the 6 large DIV2K-mini / Flickr2K-mini images and 34 of T91 (>= 193 px)."""
    folder = out / "images"
    if folder.exists():
        return folder
    folder.mkdir(parents=True)
    data = shared_root() / "datasets"
    files = sorted((data / "DIV2K-mini" / "HR").glob("*.png")) + sorted((data / "Flickr2K-mini" / "HR").glob("*.png"))
    t91 = [f for f in sorted((data / "T91" / "HR").glob("*.png")) if min(Image.open(f).size) >= 193]
    for f in files + t91[:40 - len(files)]:
        (folder / f"{f.parent.parent.name}_{f.name}").symlink_to(f)
    return folder




def eval_command(model, datasets: list[str], scales: list[int], protocol: str, threads: int,
                 out_json: Path) -> list[str]:
    """``ciaosr eval`` of ``model`` on shared benchmark sets, PSNR to ``out_json``."""
    return [sys.executable, "-m", "ciaosr", "eval", "--model", str(model), "--data-root",
            str(shared_root() / "datasets"), "--datasets", *datasets, "--scales", *map(str, scales),
            "--protocol", protocol, "--threads", str(threads), "--json", str(out_json)]


def psnr_table(out_json: Path) -> dict[str, float]:
    """{"<set> x<scale>": PSNR} from the JSON of ``ciaosr eval``."""
    data = json.loads(out_json.read_text())["results"]
    return {f"{ds} x{s}": r["psnr"] for ds, by_scale in data.items() for s, r in by_scale.items()}

"""Pack what a GPU run needs into one folder of the checkout (default ``packed/``, ignored
by git), for a machine that cannot see the shared data or download anything
(benchmarks/gpu_run.sh; docs/training.md, "Short runs on a GPU").

    python scripts/pack_training_data.py                 # -> packed/, about 26 MiB
    python scripts/pack_training_data.py --no-wheels --train-mib 4 --out /tmp/p

What it holds (``MANIFEST.json`` lists every file with its size, sha256 and source):

* ``datasets/DIV2K-mini/HR``, ``datasets/Flickr2K-mini/HR``: training tiles, ``--tile``
  pixels square, cut on a grid from those HR images (the shared training images large
  enough for x4 crops) and taken evenly spread over the grid until ``--train-mib`` is
  reached. They keep the sets' names, so a config's ``data.train`` reads the pack and
  the shared data alike (configs/edsr-baseline-ciaosr-short-gpu.yaml);
* ``datasets/Set5`` (HR and the MATLAB LR), ``datasets/Set14`` (HR): whole, byte for byte;
* ``datasets/B100-first<N>/HR``: the first N B100 images by name, whole, byte for byte;
* ``datasets/Urban100-first<N>-crop<C>/HR``: the centre C x C pixels of the first N
  Urban100 images (whole Urban100 is 130 MB). Subsets and crops are named as such,
  so no table can pass them off as the full benchmark;
* ``wheels/``: wheels of the packages ciaosr needs that the GPU image lacks
  (``imagecodecs``), for its Python (3.12, x86-64), downloaded with pip.

The encoder's initial weights need no file: the package ships the official LIIF
EDSR-baseline weights (``init.checkpoint: edsr-baseline-liif``;
tests/test_parity_official.py checks they equal the official checkpoint).

Deterministic: the same shared files and settings give the same selection, tiles and
manifest. An existing output folder is never replaced without ``--overwrite``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
MIB = 2 ** 20
TRAIN_SOURCES = ("DIV2K-mini/HR", "Flickr2K-mini/HR")
# Packages ciaosr imports that the GPU image (docs: KINDS.md of the device tool) does not hold.
GPU_MISSING_PACKAGES = ("imagecodecs",)
GPU_PYTHON = "3.12"
GPU_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


class PackError(Exception):
    """A bad setting or missing input: one line, exit status 2."""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pngs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise PackError(f"folder not found: {folder} (set --shared or CIAOSR_SHARED)")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png" and not p.name.startswith("."))


def spread(n: int, k: int) -> list[int]:
    """``k`` of the indices 0..n-1, evenly spread (all of them when k >= n)."""
    if k >= n:
        return list(range(n))
    return [int(i * n / k) for i in range(k)]


class Packer:
    def __init__(self, shared: Path, out: Path):
        self.datasets = shared / "datasets"
        self.out = out
        self.files: list[dict] = []

    def _record(self, dest: Path, source: str, **extra) -> int:
        size = dest.stat().st_size
        self.files.append({"path": dest.relative_to(self.out).as_posix(), "bytes": size, "sha256": sha256(dest),
                           "source": source, **extra})
        return size

    def copy(self, src: Path, dest: Path) -> int:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        return self._record(dest, src.relative_to(self.datasets).as_posix())

    def crop(self, src: Path, dest: Path, box: tuple[int, int, int, int]) -> int:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(src) as im:
            im.crop(box).save(dest, optimize=False, compress_level=9)
        return self._record(dest, src.relative_to(self.datasets).as_posix(), crop_box_xyxy=list(box))

    # -- the parts ---------------------------------------------------------------------
    def training_tiles(self, tile: int, budget_bytes: int) -> dict:
        grid = []  # (source, box) of every tile, image by image, row by row
        for folder in TRAIN_SOURCES:
            for src in pngs(self.datasets / folder):
                with Image.open(src) as im:
                    w, h = im.size
                grid += [(src, (x, y, x + tile, y + tile))
                         for y in range(0, h - tile + 1, tile) for x in range(0, w - tile + 1, tile)]
        if not grid:
            raise PackError(f"no training image is {tile} x {tile} pixels or larger")
        # Tiles in an order whose every prefix is spread over all images, until the budget.
        chosen, used = [], 0
        for i in _spread_order(len(grid)):
            src, box = grid[i]
            folder = self.out / "datasets" / src.parent.relative_to(self.datasets)
            path = folder / f"{src.stem}_y{box[1]:04d}_x{box[0]:04d}.png"
            size = self.crop(src, path, box)
            if used + size > budget_bytes and chosen:
                path.unlink()
                self.files.pop()
                break
            chosen.append(i)
            used += size
        return {"folders": [f"datasets/{f}" for f in TRAIN_SOURCES], "tiles": len(chosen), "of": len(grid),
                "tile": tile, "bytes": used}

    def whole_set(self, name: str, parts=("HR",), first: int | None = None, label: str | None = None) -> dict:
        label = label or name
        n_total, taken = 0, 0
        for part in parts:
            folder = self.datasets / name / part
            if part == "HR":
                files = pngs(folder)
                n_total = len(files)
                files = files[:first] if first else files
                taken = len(files)
                for src in files:
                    self.copy(src, self.out / "datasets" / label / "HR" / src.name)
            else:  # e.g. LR_bicubic: every file below it, for the HR images taken
                for src in sorted(p for p in folder.rglob("*.png")):
                    self.copy(src, self.out / "datasets" / label / src.relative_to(self.datasets / name))
        return {"folder": f"datasets/{label}", "images": taken, "of": n_total, "source": name, "whole_images": True}

    def centre_crops(self, name: str, first: int, crop: int, label: str) -> dict:
        files = pngs(self.datasets / name / "HR")
        taken = 0
        for src in files[:first]:
            with Image.open(src) as im:
                w, h = im.size
            c = min(crop, w, h)
            x, y = (w - c) // 2, (h - c) // 2
            self.crop(src, self.out / "datasets" / label / "HR" / src.name, (x, y, x + c, y + c))
            taken += 1
        return {"folder": f"datasets/{label}", "images": taken, "of": len(files), "source": name,
                "centre_crop": crop}

    def wheels(self, packages) -> dict:
        from importlib.metadata import PackageNotFoundError, version

        dest = self.out / "wheels"
        dest.mkdir(parents=True, exist_ok=True)
        pins = []
        for name in packages:
            try:
                pins.append(f"{name}=={version(name)}")  # the version this checkout is tested with
            except PackageNotFoundError:
                raise PackError(f"{name} is not installed here, so its version is unknown") from None
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               "--python-version", GPU_PYTHON, "--implementation", "cp", "-d", str(dest)]
        for plat in GPU_PLATFORMS:
            cmd += ["--platform", plat]
        proc = subprocess.run(cmd + pins, capture_output=True, text=True)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["pip failed"])[-1]
            raise PackError(f"pip download {' '.join(pins)} failed: {last} (or pack with --no-wheels)")
        for whl in sorted(dest.glob("*.whl")):
            self._record(whl, "pypi")
        return {"folder": "wheels", "packages": pins, "python": GPU_PYTHON}


def _spread_order(n: int) -> list[int]:
    """All of 0..n-1, ordered so that every prefix is spread over the whole range
    (0, n/2, n/4, 3n/4, ...): a budget cut anywhere keeps tiles of every image."""
    order, seen = [], set()
    k = 1
    while len(order) < n:
        for i in spread(n, k):
            if i not in seen:
                seen.add(i)
                order.append(i)
        k *= 2
    return order


def pack(shared: Path, out: Path, *, tile: int, train_mib: float, b100: int, urban100: int, urban_crop: int,
         max_mib: float, wheels: bool, overwrite: bool) -> dict:
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise PackError(f"{out} already exists and is not empty (use --overwrite to replace it)")
        if not (out / "MANIFEST.json").is_file():
            raise PackError(f"{out} holds files but no MANIFEST.json: not a pack folder, left as it is")
        shutil.rmtree(out)
    if not (shared / "datasets").is_dir():
        raise PackError(f"shared data not found: {shared / 'datasets'} (set --shared or CIAOSR_SHARED)")
    if tile < 192:
        raise PackError(f"--tile must be at least 192 (round(48 x 4), the largest training crop), got {tile}")
    existed = out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        p = Packer(shared, out)
        parts = {
            "train": p.training_tiles(tile, int(train_mib * MIB)),
            "Set5": p.whole_set("Set5", parts=("HR", "LR_bicubic")),
            "Set14": p.whole_set("Set14"),
            "B100": p.whole_set("B100", first=b100, label=f"B100-first{b100}"),
            "Urban100": p.centre_crops("Urban100", urban100, urban_crop,
                                       f"Urban100-first{urban100}-crop{urban_crop}"),
        }
        data_bytes = sum(f["bytes"] for f in p.files)
        if data_bytes > max_mib * MIB:
            raise PackError(f"the data would take {data_bytes / MIB:.1f} MiB, over --max-mib {max_mib:g}: "
                            f"lower --train-mib, --b100 or --urban100")
        if wheels:
            parts["wheels"] = p.wheels(GPU_MISSING_PACKAGES)
    except BaseException:  # no half-made pack left behind (the folder was empty or absent)
        shutil.rmtree(out)
        if existed:
            out.mkdir()
        raise
    manifest = {
        "what": "data for benchmarks/gpu_run.sh; made by scripts/pack_training_data.py",
        "settings": {"tile": tile, "train_mib": train_mib, "b100": b100, "urban100": urban100,
                     "urban_crop": urban_crop, "max_mib": max_mib, "wheels": wheels},
        "parts": parts,
        "eval_sets": [Path(parts[k]["folder"]).name for k in ("Set5", "Set14", "B100", "Urban100")],
        "data_bytes": data_bytes,
        "total_bytes": sum(f["bytes"] for f in p.files),
        "files": p.files,
    }
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv=None) -> int:
    default_shared = Path(os.environ.get("CIAOSR_SHARED", REPO.parent / "shared"))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=default_shared,
                    help="the shared folder (default: CIAOSR_SHARED, else ../shared): %(default)s")
    ap.add_argument("--out", type=Path, default=REPO / "packed", help="output folder (default: %(default)s)")
    ap.add_argument("--tile", type=int, default=256, help="training tile size in pixels (default 256)")
    ap.add_argument("--train-mib", type=float, default=9.0, help="size of the training tiles (default 9 MiB)")
    ap.add_argument("--b100", type=int, default=16, help="first N B100 images (default 16 of 100)")
    ap.add_argument("--urban100", type=int, default=20, help="first N Urban100 images (default 20 of 100)")
    ap.add_argument("--urban-crop", type=int, default=384, help="Urban100 centre crop size (default 384)")
    ap.add_argument("--max-mib", type=float, default=26.0,
                    help="refuse to pack more data than this (default 26 MiB: with the 25 MiB imagecodecs wheel "
                         "and the 7 MiB checkout it stays under the GPU tool's 64 MiB)")
    ap.add_argument("--wheels", dest="wheels", action="store_true",
                    help="also download wheels of the packages the GPU image lacks (imagecodecs, 25 MiB); "
                         "not needed since ciaosr imports it only to read or write 16-bit files")
    ap.add_argument("--no-wheels", dest="wheels", action="store_false", help="do not download them (the default)")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing pack folder")
    args = ap.parse_args(argv)
    for name in ("b100", "urban100", "urban_crop"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be positive")
    if args.train_mib <= 0 or args.max_mib <= 0:
        ap.error("--train-mib and --max-mib must be positive")
    try:
        m = pack(args.shared.resolve(), args.out, tile=args.tile, train_mib=args.train_mib, b100=args.b100,
                 urban100=args.urban100, urban_crop=args.urban_crop, max_mib=args.max_mib, wheels=args.wheels,
                 overwrite=args.overwrite)
    except PackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    t = m["parts"]["train"]
    print(f"packed {args.out}: {t['tiles']} training tiles of {t['of']}, eval sets {', '.join(m['eval_sets'])}; "
          f"data {m['data_bytes'] / MIB:.1f} MiB, all {m['total_bytes'] / MIB:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

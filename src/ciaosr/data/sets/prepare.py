"""``ciaosr data prepare``: turn a fetched (or, for Manga109, the user's) set into the
layout ``ciaosr eval`` and the training configs read, with a manifest (``prepare``);
or make the LR folders of any folder of HR images (``make_lr``, ``ciaosr data prepare
--hr DIR``, also run as ``ciaosr prepare-benchmark``).

* Any folder of HR images: for each image and scale s,
  ``<out>/LR_bicubic/X<s>/<name>x<s>.png``, the HR cropped at the top-left to a
  multiple of s, then MATLAB ``imresize(hr, 1/s, 'bicubic')`` in uint8, exactly as the
  EDSR benchmark pack was made; ``<out>`` defaults to the folder above the HR folder.
* Manga109: its 109 images are copied from ``source`` (a folder of the user's copy,
  named by title in any case, PNG or any image format; non-PNG files are decoded and
  written as PNG) into ``Manga109/HR/<title>.png``; a title without an image is an
  error naming the first few missing.
* Test sets (DIV2K-valid, Set5, Set14, B100, Urban100, Manga109): ``LR_bicubic/X<s>``
  for each scale, MATLAB-exact bicubic (``make_lr``; LR files that exist, such as
  DIV2K's official ones, are kept), and ``GTmod12``, each HR cropped
  at the top-left to a multiple of 12 (the mmediting protocol's ground truth).
* Training sets (DIV2K-train, Flickr2K) with ``sub_images``: ``HR_sub<size>``, crops of
  ``size`` pixels every ``step`` pixels, the last row and column flush with the border
  (the usual DIV2K sub-image preparation; it changes which crops training draws, so
  the paper's recipe reads the whole images).
* Every set folder gets ``MANIFEST.json`` (``manifest.py``).

Existing files are kept unless ``overwrite``; everything is written through a
temporary file and a rename, so an interrupted run leaves no torn PNG.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ...atomic import write_atomic
from ...errors import CiaosrError
from ...imageio import image_size, list_images, write_tensor_png
from ..benchmark import load_rgb, lr_filename, matlab_downscale, modcrop, premade_lr_dir
from .catalog import DataSet, manga109_titles
from .layout import describe_missing, images_in, name_key
from .manifest import write_manifest

GT_MOD = 12


def _bar(items, desc: str, progress: bool | None):
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="img", leave=False, disable=(not progress) if progress is not None else None)


def make_lr(hr_dir: Path, scales, out: Path | None = None, overwrite: bool = False,
            progress: bool | None = None) -> dict:
    """The LR folders of the HR images in ``hr_dir`` (see the module docstring); returns
    ``{"written": n, "skipped": n, "folders": [...]}``."""
    hr_dir = Path(hr_dir)
    if not hr_dir.is_dir():
        raise CiaosrError(f"HR folder not found: {hr_dir}")
    scales = list(dict.fromkeys(int(s) for s in scales))
    if not scales:
        raise CiaosrError("no scales given")
    for s in scales:
        if s < 2:
            raise CiaosrError(f"scales must be integers of at least 2, got {s}")
    files = list_images(hr_dir)
    if not files:
        raise CiaosrError(f"no images in {hr_dir}")
    out = Path(out) if out is not None else hr_dir.resolve().parent
    if out.exists() and not out.is_dir():
        raise CiaosrError(f"--out is not a folder: {out}")
    written = skipped = 0
    folders = []
    for s in scales:
        d = premade_lr_dir(out, s)
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CiaosrError(f"cannot create {d}: {exc.strerror or exc}") from None
        folders.append(str(d))
        for path in _bar(files, f"X{s}", progress):
            target = d / lr_filename(path.stem, s)
            if target.exists() and not overwrite:
                skipped += 1
                continue
            hr = modcrop(load_rgb(path), s)
            if hr.shape[-2] == 0 or hr.shape[-1] == 0:
                raise CiaosrError(f"{path.name} is smaller than the scale x{s}")
            write_tensor_png(target, matlab_downscale(hr, s))
            written += 1
    return {"written": written, "skipped": skipped, "folders": folders}


def import_manga109(source: Path, hr_dir: Path, overwrite: bool, progress: bool | None) -> int:
    """Copy the user's Manga109 into ``hr_dir`` (see the module docstring); returns files written."""
    source = Path(source)
    if not source.is_dir():
        raise CiaosrError(f"--from {source}: not a folder")
    by_key = {name_key(p.name): p for p in list_images(source)}
    titles = manga109_titles()
    missing = [t for t in titles if name_key(t) not in by_key]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise CiaosrError(f"{source}: {len(titles) - len(missing)} of the {len(titles)} Manga109 images found; "
                          f"missing: {', '.join(missing[:5])}{more} (one image per title, named after it)")
    hr_dir.mkdir(parents=True, exist_ok=True)
    written = 0
    for title in _bar(titles, "Manga109 HR", progress):
        src, dst = by_key[name_key(title)], hr_dir / f"{title}.png"
        if dst.exists() and not overwrite:
            continue
        if src.suffix.lower() == ".png":
            write_atomic(dst, lambda tmp, s=src: shutil.copyfile(s, tmp), overwrite=True)
        else:
            write_tensor_png(dst, load_rgb(src))
        written += 1
    return written


def make_gtmod(hr_dir: Path, out_dir: Path, overwrite: bool, progress: bool | None, mod: int = GT_MOD) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = 0
    for p in _bar(list_images(hr_dir), f"{out_dir.parent.name} GTmod{mod}", progress):
        dst = out_dir / f"{p.stem}.png"
        if dst.exists() and not overwrite:
            continue
        write_tensor_png(dst, modcrop(load_rgb(p), mod))
        written += 1
    return written


def _starts(n: int, size: int, step: int) -> list[int]:
    if n <= size:
        return [0]
    starts = list(range(0, n - size + 1, step))
    if starts[-1] + size < n:
        starts.append(n - size)
    return starts


def make_sub_images(hr_dir: Path, out_dir: Path, size: int, step: int, overwrite: bool,
                    progress: bool | None) -> int:
    """Crops ``<stem>_s<k>.png`` (k from 1, row by row) of every HR image."""
    if size < 48 or step < 1:
        raise CiaosrError(f"sub-images need a size of at least 48 and a step of at least 1, got {size} and {step}")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = 0
    for p in _bar(list_images(hr_dir), f"{out_dir.parent.name} sub-images", progress):
        img = None
        k = 0
        h, w = image_size(p)
        for y in _starts(h, size, step):
            for x in _starts(w, size, step):
                k += 1
                dst = out_dir / f"{p.stem}_s{k:03d}.png"
                if dst.exists() and not overwrite:
                    continue
                if img is None:
                    img = load_rgb(p)
                write_tensor_png(dst, img[:, y:y + size, x:x + size])
                written += 1
    return written


def _require_complete(ds: DataSet, root: Path) -> None:
    for folder in ds.hr_folders() or ds.folders:
        files = images_in(root / folder.path)
        if not files:
            hint = (f"run `ciaosr data fetch {ds.name}` first" if ds.fetchable
                    else f"give your copy with `ciaosr data prepare {ds.name} --from DIR`")
            raise CiaosrError(f"{root / folder.path}: no images ({hint})")
        gap = describe_missing(folder, files)
        if gap:
            raise CiaosrError(f"{root / folder.path}: {gap}")


def prepare(ds: DataSet, root: str | Path, *, source: str | Path | None = None, scales=(2, 3, 4),
            sub_images: bool = False, sub_size: int = 480, sub_step: int = 240, overwrite: bool = False,
            progress: bool | None = None, log=print) -> dict:
    """Prepare ``ds`` under ``root``; returns ``{"written": n, "manifests": [paths]}``."""
    root = Path(root)
    if source is not None and ds.name != "Manga109":
        raise CiaosrError(f"--from is for Manga109 only ({ds.name} comes from `ciaosr data fetch {ds.name}`)")
    if sub_images and not ds.training_set:
        raise CiaosrError(f"--sub-images is for the training sets (DIV2K-train, Flickr2K), not {ds.name}")
    written = 0
    if ds.name == "Manga109" and source is not None:
        written += import_manga109(Path(source), root / "Manga109" / "HR", overwrite, progress)
    _require_complete(ds, root)
    made_by_set: dict[str, dict[str, str]] = {top: {} for top in ds.set_folders}
    origin = "the user's copy" if ds.name == "Manga109" else (ds.base_url or "")
    for folder in ds.folders:
        top, sub = folder.path.split("/", 1)
        made_by_set[top][sub] = "Manga109, the user's copy" if ds.name == "Manga109" else f"downloaded ({origin})"
    if ds.eval_set:
        for folder in ds.hr_folders():
            set_dir = root / folder.path.rsplit("/", 1)[0]
            hr = root / folder.path
            res = make_lr(hr, scales, set_dir, overwrite, progress)
            written += res["written"]
            made = made_by_set[set_dir.name]
            for s in scales:
                made.setdefault(f"LR_bicubic/X{s}", f"MATLAB-exact bicubic x{s} of HR cropped to a multiple of {s}")
            written += make_gtmod(hr, set_dir / f"GTmod{GT_MOD}", overwrite, progress)
            made[f"GTmod{GT_MOD}"] = f"HR cropped at the top-left to a multiple of {GT_MOD}"
            log(f"{set_dir.name}: LR_bicubic X{', X'.join(str(s) for s in scales)} and GTmod{GT_MOD} ready")
    if sub_images:
        for folder in ds.hr_folders():
            set_dir = root / folder.path.rsplit("/", 1)[0]
            out = set_dir / f"HR_sub{sub_size}"
            written += make_sub_images(root / folder.path, out, sub_size, sub_step, overwrite, progress)
            made_by_set[set_dir.name][out.name] = f"{sub_size}x{sub_size} crops of HR every {sub_step} pixels"
            log(f"{set_dir.name}: sub-images in {out}")
    manifests = []
    for top, made in made_by_set.items():
        manifests.append(str(write_manifest(root / top, ds.name, made, origin)))
    return {"written": written, "manifests": manifests}


__all__ = ["import_manga109", "make_gtmod", "make_lr", "make_sub_images", "prepare"]

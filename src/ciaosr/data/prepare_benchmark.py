"""Make the MATLAB-bicubic LR folders of a benchmark test set.

For each HR image and scale s, ``<out>/LR_bicubic/X<s>/<name>x<s>.png``: the HR
cropped at the top-left to a multiple of s, then MATLAB ``imresize(hr, 1/s,
'bicubic')`` in uint8, exactly as the EDSR benchmark pack was made. Existing files are
kept unless ``overwrite``; every file is written atomically, so an interrupted run
leaves no torn PNG.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import CiaosrError
from ..imageio import list_images, write_tensor_png
from .benchmark import load_rgb, lr_filename, matlab_downscale, modcrop, premade_lr_dir


def prepare(hr_dir: Path, scales, out: Path | None = None, overwrite: bool = False, progress: bool | None = None) -> dict:
    """Write the LR folders; returns ``{"written": n, "skipped": n, "folders": [...]}``."""
    from tqdm.auto import tqdm

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
        for path in tqdm(files, desc=f"X{s}", unit="img", disable=(not progress) if progress is not None else None,
                         leave=False):
            target = d / lr_filename(path.stem, s)
            if target.exists() and not overwrite:
                skipped += 1
                continue
            hr = modcrop(load_rgb(path), s)
            if hr.shape[-2] == 0 or hr.shape[-1] == 0:
                raise CiaosrError(f"{path.name} is smaller than the scale x{s}")
            lr = matlab_downscale(hr, s)
            write_tensor_png(target, lr)
            written += 1
    return {"written": written, "skipped": skipped, "folders": folders}


__all__ = ["prepare"]

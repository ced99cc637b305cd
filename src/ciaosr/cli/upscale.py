"""``ciaosr upscale``: super-resolve image files or folders to any scale or size.

Outputs are named ``<stem>_x<scale>.png`` (``<stem>_<W>x<H>.png`` with ``--size``), next
to each input, or in the ``-o`` folder. A single input with ``-o FILE`` writes FILE, in
the format its extension names. Existing files are never replaced without
``--overwrite``. With several inputs (or a folder) a bad file is reported and skipped;
the exit status is then 1. Any other error is one line and exit status 2.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from ..errors import CiaosrError


def register(sub) -> None:
    from ..inference.upscale import DEFAULT_MAX_PIXELS
    from ..runtime import PRECISIONS

    p = sub.add_parser(
        "upscale", help="super-resolve images to any scale or size",
        description="Super-resolve images (PNG, JPEG, WebP, TIFF, BMP, GIF; grey, RGB, RGBA, 8 or 16 bit) "
                    "to any scale or size, in memory-bounded tiles. The model makes the axes that grow; "
                    "then an axis that shrinks (a factor below 1, or a --size below the input) is resized "
                    "with antialiased bicubic, so a pure downscale is exactly that resize. EXIF orientation "
                    "is applied; the ICC profile, EXIF and DPI are kept where the output format can hold "
                    "them. Animated or multi-page files are refused.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and/or folders of images")
    p.add_argument("-o", "--output", default=None, metavar="OUTPUT",
                   help="output file (one input) or folder (several inputs or a folder); "
                        "default: next to each input, named <stem>_x<scale>.png")
    p.add_argument("--scale", default=None, metavar="S|SXxSY",
                   help="upscaling factor, or width factor x height factor (e.g. 3.7 or 2x3.5); "
                        "a factor below 1 shrinks that axis with antialiased bicubic (e.g. 2x0.5: the model "
                        "doubles the width, then the height is halved)")
    p.add_argument("--size", default=None, metavar="WxH",
                   help="output size in pixels, width x height (e.g. 1920x1080); an axis smaller than "
                        "the input is shrunk with antialiased bicubic")
    p.add_argument("--model", "-m", default=None, metavar="NAME_OR_PATH",
                   help="model name with shipped weights or checkpoint file (default: the default model)")
    p.add_argument("--device", default="auto", help="auto (default: CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="fp32 (default), bf16 (autocast) or fp16 (GPU only; refused on CPU)")
    p.add_argument("--tile", type=int, default=None, metavar="N",
                   help="LR tile size in pixels (default: chosen from available memory)")
    p.add_argument("--bit-depth", type=int, default=8, choices=[8, 16], help="8 (default) or 16 (PNG and TIFF only)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                   help=f"refuse outputs with more pixels than this (default {DEFAULT_MAX_PIXELS} = 2**28)")
    p.set_defaults(func=run)


# --------------------------------------------------------------------------------------
# Inputs and outputs
# --------------------------------------------------------------------------------------
def collect_inputs(inputs: list[str]) -> tuple[list[Path], bool]:
    """The image files to process, and whether this is a many-image run (several inputs
    or a folder). Folders contribute their image files (by extension, not recursive)."""
    from ..imageio import IMAGE_EXTENSIONS, list_images

    files: list[Path] = []
    many = len(inputs) > 1
    for text in inputs:
        p = Path(text)
        if p.is_dir():
            many = True
            found = list_images(p)
            if not found and len(inputs) == 1:
                raise CiaosrError(f"{p}: no images in this folder ({', '.join(IMAGE_EXTENSIONS)})")
            files.extend(found)
        else:
            files.append(p)  # a missing file is reported when it is processed
    return files, many


def plan_outputs(files: list[Path], many: bool, output: str | None, label: str) -> list[Path]:
    def default_name(src: Path) -> str:
        return f"{src.stem}_{label}.png"

    if output is None:
        return [src.parent / default_name(src) for src in files]
    out = Path(output)
    if many or out.is_dir() or output.endswith((os.sep, "/")):
        if out.exists() and not out.is_dir():
            raise CiaosrError(f"{out}: exists and is not a folder (several inputs need an output folder)")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CiaosrError(f"{out}: cannot create output folder ({exc.strerror or exc})") from None
        return [out / default_name(src) for src in files]
    if out.parent != Path("") and not out.parent.exists():
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CiaosrError(f"{out.parent}: cannot create output folder ({exc.strerror or exc})") from None
    return [out]


# --------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------
def run(args) -> int:
    from tqdm.auto import tqdm

    from ..atomic import check_writable_folder
    from ..geometry import Resize
    from ..imageio import output_format, read_image, write_image
    from ..inference.upscale import get_model, upscale_data
    from ..inference.tiling import MIN_TILE
    from ..runtime import Precision, resolve_device

    # Everything that does not depend on one image is checked before any work.
    resize = Resize.parse(args.scale, args.size)
    if args.tile is not None and args.tile < MIN_TILE:
        raise CiaosrError(f"--tile must be at least {MIN_TILE} LR pixels, got {args.tile}")
    if args.max_pixels < 1:
        raise CiaosrError(f"--max-pixels must be positive, got {args.max_pixels}")
    device = resolve_device(args.device)
    precision = Precision.parse(args.precision).check(device)

    files, many = collect_inputs(args.inputs)
    if not files:
        raise CiaosrError("no images to process")
    outputs = plan_outputs(files, many, args.output, resize.label)
    for out in dict.fromkeys(outputs):
        output_format(out, args.bit_depth)
    checked_folders: dict[Path, str | None] = {}

    model = None
    failures: list[str] = []
    seen: set[Path] = set()
    bar = tqdm(total=len(files), unit="image", desc="upscale", disable=None if many else True)

    def report(msg: str) -> None:
        if not many:
            raise CiaosrError(msg)
        failures.append(msg)
        tqdm.write(f"error: {msg}", file=sys.stderr)

    try:
        for src, dst in zip(files, outputs):
            try:
                t0 = time.perf_counter()
                folder = dst.parent
                if folder not in checked_folders:
                    try:
                        check_writable_folder(folder)
                        checked_folders[folder] = None
                    except CiaosrError as exc:
                        checked_folders[folder] = str(exc)
                if checked_folders[folder] is not None:
                    raise CiaosrError(checked_folders[folder])
                if dst.resolve() in seen:
                    raise CiaosrError(f"{src}: its output {dst} was already written in this run")
                if dst.exists() and not args.overwrite:
                    raise CiaosrError(f"{dst}: already exists (use --overwrite to replace it)")
                data = read_image(src)
                h, w = resize.output_size((data.height, data.width), args.max_pixels)
                if data.alpha is not None and output_format(dst, args.bit_depth) == "JPEG":
                    raise CiaosrError(f"{src}: has transparency, which JPEG cannot store (write PNG, WebP or TIFF)")
            except CiaosrError as exc:
                report(str(exc))
                bar.update(1)
                continue
            if model is None:  # loaded on the first image that needs it; a bad model stops the run
                model = get_model(args.model, device)
            try:
                result = upscale_data(data, (h, w), model, device=device, precision=precision,
                                      tile=args.tile, progress=None)
                write_image(dst, result, args.bit_depth, args.overwrite)
            except CiaosrError as exc:
                report(f"{src}: {exc}" if str(src) not in str(exc) else str(exc))
                bar.update(1)
                continue
            seen.add(dst.resolve())
            dt = time.perf_counter() - t0
            tqdm.write(f"{src}: {data.width}x{data.height} -> {w}x{h} ({resize.description}), {dt:.2f} s -> {dst}")
            bar.update(1)
    finally:
        bar.close()

    if failures:
        print(f"error: {len(failures)} of {len(files)} image(s) failed:", file=sys.stderr)
        for msg in failures:
            print(f"  {msg}", file=sys.stderr)
        return 1
    return 0

"""``ciaosr upscale``: super-resolve image files or folders to any scale or size.

Outputs are named ``<stem>_x<scale>.png`` (``<stem>_<W>x<H>.png`` with ``--size``), next
to each input, or in the ``-o`` folder. A single input with ``-o FILE`` writes FILE, in
the format its extension names. Existing files are never replaced without
``--overwrite``. With several inputs (or a folder) a bad file is reported and skipped;
the exit status is then 1. Any other error is one line and exit status 2.
"""

from __future__ import annotations

import math
import os
import re
import sys
import time
from pathlib import Path

from ..errors import CiaosrError

_SIZE_RE = re.compile(r"^\s*(\S+?)\s*[xX\u00d7]\s*(\S+)\s*$")


def register(sub) -> None:
    from ..inference.upscale import DEFAULT_MAX_PIXELS

    p = sub.add_parser(
        "upscale", help="super-resolve images to any scale or size",
        description="Super-resolve images (PNG, JPEG, WebP, TIFF, BMP; grey, RGB, RGBA, 8 or 16 bit) "
                    "to any scale or size, in memory-bounded tiles.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and/or folders of images")
    p.add_argument("-o", "--output", default=None, metavar="OUTPUT",
                   help="output file (one input) or folder (several inputs or a folder); "
                        "default: next to each input, named <stem>_x<scale>.png")
    p.add_argument("--scale", default=None, metavar="S|SXxSY",
                   help="upscaling factor, or width factor x height factor (e.g. 3.7 or 2x3.5)")
    p.add_argument("--size", default=None, metavar="WxH", help="output size in pixels, width x height (e.g. 1920x1080)")
    p.add_argument("--model", "-m", default=None, metavar="NAME_OR_PATH",
                   help="model name with shipped weights or checkpoint file (default: the default model)")
    p.add_argument("--device", default="auto", help="auto (default: CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"],
                   help="fp32 (default), bf16 (autocast) or fp16 (GPU only; refused on CPU)")
    p.add_argument("--tile", type=int, default=None, metavar="N",
                   help="LR tile size in pixels (default: chosen from available memory)")
    p.add_argument("--bit-depth", type=int, default=8, choices=[8, 16], help="8 (default) or 16 (PNG and TIFF only)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                   help=f"refuse outputs with more pixels than this (default {DEFAULT_MAX_PIXELS} = 2**28)")
    p.set_defaults(func=run)


# --------------------------------------------------------------------------------------
# Argument parsing
# --------------------------------------------------------------------------------------
def _positive_float(text: str, what: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise CiaosrError(f"{what}: '{text}' is not a number") from None
    if not math.isfinite(v) or v <= 0:
        raise CiaosrError(f"{what} must be a positive finite number, got '{text}'")
    return v


def parse_scale(text: str) -> float | tuple[float, float]:
    """'3.7' -> 3.7; '2x3.5' -> (2.0, 3.5) = (width factor, height factor)."""
    m = _SIZE_RE.match(text)
    if m and not re.fullmatch(r"\s*[-+]?(inf|infinity|nan)\s*", text, re.I):
        return _positive_float(m.group(1), "--scale"), _positive_float(m.group(2), "--scale")
    return _positive_float(text.strip(), "--scale")


def parse_size(text: str) -> tuple[int, int]:
    """'1920x1080' -> (1920, 1080) = (width, height)."""
    m = _SIZE_RE.match(text)
    if not m:
        raise CiaosrError(f"--size must be WIDTHxHEIGHT (e.g. 1920x1080), got '{text}'")
    try:
        w, h = int(m.group(1)), int(m.group(2))
    except ValueError:
        raise CiaosrError(f"--size must be whole pixels WIDTHxHEIGHT, got '{text}'") from None
    if w < 1 or h < 1:
        raise CiaosrError(f"--size must be at least 1x1 pixel, got '{text}'")
    return w, h


def _num(v: float) -> str:
    return f"{v:g}"


def scale_label(scale, size) -> str:
    """The part of the default output name that says what was done."""
    if size is not None:
        return f"{size[0]}x{size[1]}"
    if isinstance(scale, tuple):
        if scale[0] == scale[1]:
            return f"x{_num(scale[0])}"
        return f"x{_num(scale[0])}x{_num(scale[1])}"
    return f"x{_num(scale)}"


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
    from ..imageio import output_format, read_image, write_image
    from ..inference.upscale import get_model, output_size, precision_context, resolve_device, upscale_data
    from ..inference.tiling import MIN_TILE

    # Everything that does not depend on one image is checked before any work.
    if args.scale is not None and args.size is not None:
        raise CiaosrError("give either --scale or --size, not both")
    if args.scale is None and args.size is None:
        raise CiaosrError("give --scale S (or SXxSY) or --size WxH")
    scale = parse_scale(args.scale) if args.scale is not None else None
    size = parse_size(args.size) if args.size is not None else None
    if args.tile is not None and args.tile < MIN_TILE:
        raise CiaosrError(f"--tile must be at least {MIN_TILE} LR pixels, got {args.tile}")
    if args.max_pixels < 1:
        raise CiaosrError(f"--max-pixels must be positive, got {args.max_pixels}")
    device = resolve_device(args.device)
    precision_context(device, args.precision)

    files, many = collect_inputs(args.inputs)
    if not files:
        raise CiaosrError("no images to process")
    outputs = plan_outputs(files, many, args.output, scale_label(scale, size))
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
                w, h = output_size(data.size, scale, size, args.max_pixels)
                if data.alpha is not None and output_format(dst, args.bit_depth) == "JPEG":
                    raise CiaosrError(f"{src}: has transparency, which JPEG cannot store (write PNG, WebP or TIFF)")
            except CiaosrError as exc:
                report(str(exc))
                bar.update(1)
                continue
            if model is None:  # loaded on the first image that needs it; a bad model stops the run
                model = get_model(args.model, device)
            try:
                result = upscale_data(data, (w, h), model, device=device, precision=args.precision,
                                      tile=args.tile, progress=None)
                write_image(dst, result, args.bit_depth, args.overwrite)
            except CiaosrError as exc:
                report(f"{src}: {exc}" if str(src) not in str(exc) else str(exc))
                bar.update(1)
                continue
            seen.add(dst.resolve())
            dt = time.perf_counter() - t0
            if size is not None:
                what = f"size {w}x{h}"
            elif isinstance(scale, tuple) and scale[0] != scale[1]:
                what = f"x{_num(scale[0])} wide, x{_num(scale[1])} high"
            else:
                what = f"x{_num(scale[0] if isinstance(scale, tuple) else scale)}"
            tqdm.write(f"{src}: {data.width}x{data.height} -> {w}x{h} ({what}), {dt:.2f} s -> {dst}")
            bar.update(1)
    finally:
        bar.close()

    if failures:
        print(f"error: {len(failures)} of {len(files)} image(s) failed:", file=sys.stderr)
        for msg in failures:
            print(f"  {msg}", file=sys.stderr)
        return 1
    return 0

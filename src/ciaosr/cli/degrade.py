"""``ciaosr degrade``: write the low-resolution images the real-world training makes.

Each input image goes through a degradation pipeline (``ciaosr.data.degradations``)
as one training crop would, shrunk by ``--scale``; ``--count K`` writes K draws of it.
The outputs show what the real-world model is trained on, and make a test folder of
degraded photos where RealSRSet or DPED are not at hand (docs/real-world.md).

Draws are seeded per output by ``--seed``, the input's file name and the variant
number, so an output does not depend on which other files the run reads, and the same
command writes the same files.
"""

from __future__ import annotations

import sys
import zlib
from pathlib import Path

from ..errors import CiaosrError
from .command import Command, add_device, add_threads

DEFAULT_PIPELINE = "realesrgan"


def arguments(p) -> None:
    from ..options import DEGRADATION_PIPELINES

    p.add_argument("input", metavar="IN", help="an image file, or a folder of images (not its subfolders)")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="output folder (created if missing), or a file name for one input and --count 1")
    p.add_argument("--scale", required=True, metavar="S",
                   help="how much smaller the output is, at least 1: 4, 4x, x4, 3.5, or width x height 2x3")
    p.add_argument("--pipeline", choices=DEGRADATION_PIPELINES, default=DEFAULT_PIPELINE,
                   help="realesrgan (default; the released CiaoSR settings) or bsrgan")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0); same seed, same files")
    p.add_argument("--count", type=int, default=1, metavar="K", help="degraded versions per image (default 1)")
    p.add_argument("--sharpen", action="store_true",
                   help="unsharp-mask the image first, as the released training does to the image it degrades")
    p.add_argument("--config", metavar="FILE", default=None,
                   help="YAML mapping of degradation settings to change (names in docs/real-world.md)")
    add_device(p)
    add_threads(p)
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("-v", "--verbose", action="store_true", help="print the degradations drawn for each output")


# --------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------
def _scale(text: str):
    from ..geometry import Resize

    resize = Resize.parse(scale=text)
    if min(resize.scale) < 1:
        raise CiaosrError(f"--scale must be at least 1 (the output is the input shrunk by it), got '{text}'")
    return resize


def _settings(args):
    from ..data.degradations import DegradationSettings

    cfg = None
    if args.config is not None:
        import yaml

        path = Path(args.config)
        try:
            cfg = yaml.safe_load(path.read_text())
        except OSError as exc:
            raise CiaosrError(f"--config {path}: cannot read ({exc.strerror or exc})") from None
        except yaml.YAMLError as exc:
            raise CiaosrError(f"--config {path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        if cfg is None:
            cfg = {}
    try:
        return DegradationSettings.from_config(cfg, pipeline=args.pipeline)
    except CiaosrError as exc:
        raise CiaosrError(f"--config {args.config}: {exc}" if args.config else str(exc)) from None


def _inputs(text: str) -> list[Path]:
    from ..imageio import list_images

    path = Path(text)
    if not path.exists():
        raise CiaosrError(f"{path}: no such file or folder")
    if path.is_dir():
        files = list_images(path)
        if not files:
            raise CiaosrError(f"{path}: no images in this folder")
        return files
    return [path]


def output_paths(inputs: list[Path], output: str, pipeline: str, label: str, count: int) -> list[list[Path]]:
    """Per input, its ``count`` output paths: ``OUT`` itself for one file, one variant
    and an image file name; else ``OUT/<stem>_<pipeline>_<label>[_<k>].png`` (``label``
    the scale's, ``x4`` or ``x2x3``)."""
    from ..imageio import WRITE_FORMATS

    out = Path(output)
    if len(inputs) == 1 and count == 1 and out.suffix.lower() in WRITE_FORMATS and not out.is_dir():
        return [[out]]
    if out.suffix.lower() in WRITE_FORMATS and not out.is_dir():
        raise CiaosrError(f"-o {out}: several outputs ({len(inputs) * count}) need a folder, not a file name")
    stems = [p.stem for p in inputs]
    paths = []
    for src in inputs:
        stem = src.stem if stems.count(src.stem) == 1 else f"{src.stem}_{src.suffix.lstrip('.').lower()}"
        base = f"{stem}_{pipeline}_{label}"
        paths.append([out / f"{base}.png"] if count == 1 else [out / f"{base}_{k}.png" for k in range(1, count + 1)])
    return paths


def seed_for(seed: int, name: str, variant: int) -> int:
    """The generator seed of one output: from the run's seed, the input's file name and
    the variant number (independent of the other inputs and of the folder)."""
    import numpy as np

    state = np.random.SeedSequence([seed % 2**64, zlib.crc32(name.encode()), variant]).generate_state(2, np.uint32)
    return int(state[0]) << 32 | int(state[1])


# --------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------
def _describe(step: dict) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.3g}"
        if isinstance(v, list):
            return "[" + ", ".join(fmt(x) for x in v) + "]"
        return str(v)

    return f"{step['op']} " + ", ".join(f"{k} {fmt(v)}" for k, v in step.items() if k != "op")


def run(args) -> int:
    import numpy as np
    import torch

    from ..atomic import AlreadyExists, output_folders
    from ..data.degradations import degrade, usm_sharpen
    from ..imageio import ImageData, read_image, write_image
    from ..runtime import resolve_device, set_threads

    resize = _scale(args.scale)
    if args.count < 1:
        raise CiaosrError(f"--count must be at least 1, got {args.count}")
    if args.seed < 0:
        raise CiaosrError(f"--seed must be 0 or more, got {args.seed}")
    settings = _settings(args)
    set_threads(args.threads)
    device = resolve_device(args.device, allowed=("cpu", "cuda"), purpose="degradation")
    inputs = _inputs(args.input)
    plan = output_paths(inputs, args.output, settings.pipeline, resize.label, args.count)
    folders = {p.parent for paths in plan for p in paths}
    if Path(args.input).is_dir() and any(f.resolve() == Path(args.input).resolve() for f in folders):
        raise CiaosrError(f"-o {args.output}: write the degraded images to another folder than the input's")
    if not args.overwrite:
        for p in (p for paths in plan for p in paths):
            if p.exists():
                raise AlreadyExists(p)
    with output_folders(*sorted(folders)):  # made; a failed run leaves none of them empty
        for src, paths in zip(inputs, plan):
            data = read_image(src)
            pixels = torch.from_numpy(np.ascontiguousarray(data.pixels)).permute(2, 0, 1).float()
            hr = pixels.expand(3, -1, -1).unsqueeze(0).to(device)  # grey becomes RGB; alpha is left out
            if args.sharpen:
                hr = usm_sharpen(hr)
            for k, dst in enumerate(paths, start=1):
                generator = torch.Generator(device=device).manual_seed(seed_for(args.seed, src.name, k))
                (lr,), (params,) = degrade(hr, torch.tensor([resize.scale]), settings, generator, return_params=True)
                out = ImageData(lr.permute(1, 2, 0).cpu().numpy(), None, 8, data.meta)
                write_image(dst, out, 8, overwrite=args.overwrite)
                print(f"{src}: {data.width}x{data.height} -> {out.width}x{out.height} ({settings.pipeline}) -> {dst}")
                if args.verbose:
                    for step in params["steps"]:
                        print(f"  {_describe(step)}")
    sys.stdout.flush()
    return 0


COMMAND = Command(
    "degrade", help="degrade images as real-world training does (Real-ESRGAN or BSRGAN pipeline)",
    description="Write low-resolution versions of images, made by the real-world training's degradation "
                "pipeline (blur, resize, noise, JPEG; docs/real-world.md): to see what a real-world model "
                "is trained on, or to make a test folder of degraded photos.",
    arguments=arguments, run=run)


__all__ = ["output_paths", "seed_for"]

"""``ciaosr cmsr-table``: build LMF's CMSR table of one output scale from HR images, as the
official ``init_cmsr.py`` does (the work is ``ciaosr.inference.cmsr.build_tables``), into
a table file that ``ciaosr upscale --cmsr`` reads. An existing file keeps its other
scales' tables and has this scale's searched again from its current thresholds (the
official script's behaviour: thresholds only fall).
"""

from __future__ import annotations

import math
from pathlib import Path

from .command import Command, add_device


def arguments(p) -> None:
    p.add_argument("images", metavar="DIR", help="folder of HR images (e.g. DIV2K train HR)")
    p.add_argument("--model", "-m", required=True, metavar="NAME_OR_PATH", help="an LMF model name or checkpoint")
    p.add_argument("--scale", type=float, required=True, metavar="S", help="the output scale, above 4")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="table file (YAML), updated if it exists")
    p.add_argument("--mse", type=float, default=2e-5, metavar="E",
                   help="largest MSE (normalised space) of a lower-scale rendering (default 2e-5, the official)")
    p.add_argument("--max-images", type=int, default=None, metavar="N", help="the first N images only")
    add_device(p, help="auto, cpu, cuda, cuda:N, mps")


def run(args) -> int:
    from ..atomic import check_output_folder
    from ..data.benchmark import load_rgb
    from ..errors import CiaosrError
    from ..imageio.files import list_images
    from ..inference.cmsr import build_tables, check_model, load_tables, save_tables
    from ..inference.upscale import get_model
    from ..runtime import resolve_device

    if not (math.isfinite(args.scale) and args.scale > 4):
        raise CiaosrError(f"--scale must be above 4 (CMSR renders past the training range), got {args.scale:g}")
    if not (math.isfinite(args.mse) and args.mse > 0):
        raise CiaosrError(f"--mse must be positive, got {args.mse:g}")
    if args.max_images is not None and args.max_images < 1:
        raise CiaosrError(f"--max-images must be positive, got {args.max_images}")
    folder = Path(args.images)
    if not folder.is_dir():
        raise CiaosrError(f"not a folder of images: {folder}")
    files = list_images(folder)[:args.max_images]
    if not files:
        raise CiaosrError(f"no images in {folder}")
    out = Path(args.output)
    if out.is_dir():
        raise CiaosrError(f"-o {out}: is a folder; give a file name")
    check_output_folder(out.parent)  # a missing one is made when the table is written
    tables = load_tables(out) if out.exists() else None
    model = get_model(args.model, resolve_device(args.device))
    check_model(model)
    tables = build_tables(model, (load_rgb(f) for f in files), args.scale, args.mse, tables)
    save_tables(tables, out)
    table = tables[float(args.scale)]
    print(f"CMSR table x{args.scale:g} from {len(files)} image(s), MSE {args.mse:g}: "
          + ", ".join(f"x{d:g} {t:g}" for d, t in table.items()) + f" -> {out}")
    return 0


COMMAND = Command(
    "cmsr-table", help="build LMF's CMSR table of one scale from HR images (for upscale --cmsr)",
    description="Search the CMSR thresholds of an LMF model (lmliif, lmlte, lmciaosr) at one output "
                "scale on HR images (each made a LIIF-rule pair: PIL bicubic LR, HR cropped), as the "
                "official init_cmsr.py does, and write them to a table file.",
    arguments=arguments, run=run)

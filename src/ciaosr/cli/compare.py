"""``ciaosr compare``: one figure with the same crop of several models' outputs side by side."""

from __future__ import annotations

from pathlib import Path

from ..errors import CiaosrError
from .command import Command, add_chunk, add_device, add_threads


def arguments(p) -> None:
    p.add_argument("image", metavar="IMAGE", help="the low-resolution input")
    p.add_argument("--models", "-m", nargs="+", required=True, metavar="MODEL",
                   help="model names, checkpoint files, or 'bicubic' (MATLAB bicubic)")
    p.add_argument("--scale", "-s", type=float, required=True, help="upscaling factor (above 1)")
    p.add_argument("--crop", metavar="X,Y,W,H", default=None,
                   help="the region shown, in output pixels (default: the whole output)")
    p.add_argument("--gt", metavar="HR", default=None,
                   help="the ground truth (HR) of IMAGE: shown, and used for PSNR and SSIM")
    p.add_argument("-o", "--output", required=True, metavar="FIG.png", help="the figure to write (PNG)")
    p.add_argument("--overwrite", action="store_true", help="replace FIG.png if it exists")
    add_device(p)
    add_threads(p)
    add_chunk(p)


def run(args) -> int:
    from ..atomic import AlreadyExists, check_output_folder, output_folders
    from ..evaluation.compare import compare, parse_crop
    from ..evaluation.figure import save_figure
    from ..runtime import set_threads

    out = Path(args.output)
    if out.suffix.lower() != ".png":
        raise CiaosrError(f"-o {out}: the figure is written as PNG; give a .png name")
    if out.exists() and not args.overwrite:
        raise AlreadyExists(out)
    if out.is_dir():
        raise CiaosrError(f"-o {out}: is a folder; give a file name")
    check_output_folder(out.parent)  # a missing one is made when the figure is written
    if args.chunk < 1:
        raise CiaosrError(f"--chunk must be positive, got {args.chunk}")
    set_threads(args.threads)
    comp = compare(args.image, args.models, args.scale, crop=parse_crop(args.crop), gt=args.gt,
                   device=args.device, chunk=args.chunk)
    with output_folders(out.parent):
        save_figure(comp, out, overwrite=args.overwrite)
    for p in comp.panels:
        scores = f"  PSNR {p.psnr:.4f} dB" if p.psnr is not None else ""
        scores += f"  SSIM {p.ssim:.4f}" if p.ssim is not None else ""
        print(f"{p.label}{scores}")
    print(f"wrote {out}")
    return 0


COMMAND = Command(
    "compare", help="one figure: the same crop of several models' outputs side by side, with PSNR/SSIM",
    description="Upscale IMAGE (a low-resolution image) with each model as 'ciaosr eval' does (LIIF "
                "protocol: whole image, clamped) and draw the same crop of every output side by side, "
                "next to the whole image with the crop outlined. With --gt, the ground truth's crop comes "
                "first and each output is labelled with the PSNR (dB) and SSIM of its crop (Y channel, "
                "without the protocol's border of ceil(s) pixels at the image's edges).",
    arguments=arguments, run=run)

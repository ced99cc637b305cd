"""``ciaosr upscale``: super-resolve image files, folders or stdin to any scale or size.

Which files are read and written, and how outputs are named, is the batch plan
(``ciaosr.inference.batch``); this module parses the arguments, runs the plan and
reports. With one input every error is one line and exit status 2; with several
inputs or a folder a bad file is reported and skipped, and the exit status is 1.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from ..errors import CiaosrError
from .command import AUTO_DEVICE_HELP, Command, add_device, add_precision, add_threads

#: CPU threads unless --threads says otherwise: the cores other work leaves free
#: (runtime.free_cores; docs/performance.md has the measurements behind it).
DEFAULT_THREADS = "auto"

EXIT_CODES = """exit status:
  0    every image written (or skipped as asked, e.g. by --skip-existing)
  1    some images failed; each is listed with its reason at the end
  2    usage error (bad argument, model or output path), nothing done
  130  interrupted (Ctrl-C); files written so far are complete, rerun with --skip-existing

output names: <stem><suffix><ext>, suffix _x<scale> (or _<W>x<H> for --size), ext as the
input's unless --ext or -o FILE says otherwise; when two inputs of one folder would give
the same name (photo.jpg, photo.png with --ext png) both take their source extension:
photo_jpg_x4.png, photo_png_x4.png. Files named like this run's outputs are not read
from folders, outputs never replace inputs, and existing files are kept unless
--overwrite."""


def arguments(p) -> None:
    from ..imageio import WRITE_FORMATS
    from ..options import BACKENDS, DEFAULT_MAX_PIXELS

    exts = sorted({e.lstrip(".") for e in WRITE_FORMATS})
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders of images, or - for stdin")
    p.add_argument("-o", "--output", default=None, metavar="OUTPUT",
                   help="output file (one input), folder (several inputs or a folder), or - for stdout; "
                        "default: next to each input")
    p.add_argument("--scale", default=None, metavar="S",
                   help="factor (3.7, 4x, x4) or width x height factors (2x3.5); a factor below 1 shrinks "
                        "that axis with antialiased bicubic (2x0.5: the model doubles the width, then the "
                        "height is halved)")
    p.add_argument("--size", default=None, metavar="WxH",
                   help="output size in pixels, width x height (1920x1080); 1920x or x1080 keeps the aspect "
                        "ratio (other side = round(other * new / this)); an axis smaller than the input is "
                        "shrunk with antialiased bicubic")
    p.add_argument("--model", "-m", default=None, metavar="NAME_OR_PATH",
                   help="model name with shipped weights or checkpoint file (default: the default model); "
                        "with --backend onnxruntime also an exported .onnx file")
    p.add_argument("--backend", default="torch", choices=BACKENDS,
                   help="torch (default), or onnxruntime: the model's exported ONNX graphs on the CPU in fp32 "
                        "(--model X.onnx from 'ciaosr export', or any model, exported once into "
                        "$XDG_CACHE_HOME/ciaosr/onnx); needs the onnx extra")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the encoder and decoder (inductor; the first image waits for the "
                        "compilation, later ones of any size reuse it; docs/performance.md)")
    add_device(p, help=AUTO_DEVICE_HELP)
    add_precision(p, help="fp32 (default); bf16 (autocast: about 2.5x faster on CPUs with AVX512-BF16/AMX, "
                          "PSNR within 0.01 dB, but colours on 8-bit mantissa steps); auto (bf16 where the "
                          "CPU or GPU computes it natively, else fp32; on other CPUs bf16 is emulated, many "
                          "times slower, and warned about); fp16 (GPU only; refused on CPU)")
    add_threads(p, default=DEFAULT_THREADS,
                help="CPU threads (default auto: the cores other processes leave free now, checked again "
                     "between tiles; one thread shares a busy core far better than two, docs/performance.md); "
                     "under torchrun per process, auto dividing the free cores among the machine's processes")
    p.add_argument("--tile", type=int, default=None, metavar="N",
                   help="LR tile size in pixels (default: chosen from available memory)")
    p.add_argument("--cmsr", default=None, metavar="TABLES",
                   help="LMF models (lmliif, lmlte, lmciaosr): past x4, render with CMSR from this table file "
                        "(made by `ciaosr cmsr-table`); the whole image at once, not in tiles")
    p.add_argument("--bit-depth", type=int, default=None, choices=[8, 16],
                   help="8 or 16 (PNG and TIFF); default: the input's where the output format holds it")
    p.add_argument("--ext", default=None, metavar="EXT", type=str.lower,
                   help=f"output format for every output ({', '.join(exts)}); default: the input's, or "
                        f"-o FILE's; stdin: png")
    p.add_argument("--quality", type=int, default=None, metavar="Q",
                   help="JPEG and WebP quality, 1-100 (default 95)")
    p.add_argument("--png-level", type=int, default=None, metavar="L",
                   help="PNG compression, 0 (none) to 9 (smallest, slowest); default 3, which writes "
                        "about 2x faster than 6 for files 11-15%% larger")
    p.add_argument("--suffix", default=None, metavar="TEXT",
                   help="added to each output's stem (default _x<scale>, or _<W>x<H> with --size)")
    p.add_argument("-r", "--recursive", action="store_true",
                   help="include subfolders of folder inputs, mirroring the tree under -o")
    p.add_argument("--skip-existing", action="store_true",
                   help="leave outputs that exist and report them as skipped (resumes a stopped run)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                   help=f"refuse outputs with more pixels than this (default {DEFAULT_MAX_PIXELS} = 2**28)")


# --------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------
def _naming(args, resize):
    from ..imageio import WRITE_FORMATS
    from ..inference.batch import Naming

    ext = None
    if args.ext is not None:
        ext = "." + args.ext.lstrip(".")
        if ext not in WRITE_FORMATS:
            known = ", ".join(sorted({e.lstrip(".") for e in WRITE_FORMATS}))
            raise CiaosrError(f"--ext {args.ext}: unknown output format (use one of {known})")
    if args.suffix is not None and ("/" in args.suffix or os.sep in args.suffix):
        raise CiaosrError(f"--suffix must not contain a path separator, got '{args.suffix}'")
    return Naming.of(resize, args.suffix, ext)


def _check_arguments(args) -> None:
    from ..inference.tiling import check_tile

    check_tile(args.tile)
    if args.max_pixels < 1:
        raise CiaosrError(f"--max-pixels must be positive, got {args.max_pixels}")
    if args.quality is not None and not 1 <= args.quality <= 100:
        raise CiaosrError(f"--quality must be 1 to 100, got {args.quality}")
    if args.png_level is not None and not 0 <= args.png_level <= 9:
        raise CiaosrError(f"--png-level must be 0 to 9, got {args.png_level}")
    if args.overwrite and args.skip_existing:
        raise CiaosrError("give --overwrite or --skip-existing, not both")
    if args.cmsr is not None:
        if args.tile is not None:
            raise CiaosrError("--cmsr renders the whole image at once: leave out --tile")
        if args.backend != "torch":
            raise CiaosrError("--cmsr runs on the torch backend only")
        from ..inference.cmsr import load_tables

        args.cmsr_tables = load_tables(args.cmsr)


# --------------------------------------------------------------------------------------
# The standard streams
# --------------------------------------------------------------------------------------
def _stdin_file(workdir: str) -> Path:
    """stdin's bytes as a file (the image readers take files)."""
    if sys.stdin is None or sys.stdin.isatty():
        raise CiaosrError("input '-' reads an image from stdin, but stdin is a terminal (pipe an image in)")
    blob = sys.stdin.buffer.read()
    if not blob:
        raise CiaosrError("<stdin>: no data (input '-' reads an image from stdin)")
    path = Path(workdir) / "stdin"
    path.write_bytes(blob)
    return path


def _copy_to_stdout(path: Path) -> None:
    sys.stdout.flush()
    with open(path, "rb") as f:
        shutil.copyfileobj(f, sys.stdout.buffer)
    sys.stdout.buffer.flush()


# --------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------
def run(args) -> int:
    from ..distributed import ShardGroup, device_for, dist_info_from_env, set_threads
    from ..geometry import Resize
    from ..imageio import output_format
    from ..inference.batch import STREAM, plan_batch
    from ..inference.upscale import check_backend
    from ..runtime import Precision

    # Everything that does not depend on one image is checked before any work.
    resize = Resize.parse(args.scale, args.size)
    _check_arguments(args)
    dist_info = dist_info_from_env()  # one process, or one of a torchrun job's
    set_threads(args.threads, dist_info)
    backend = check_backend(args.backend, args.device, args.precision)
    if args.compile and backend != "torch":
        raise CiaosrError("--compile is for the torch backend (onnxruntime optimises its graphs itself)")
    device = device_for("cpu" if backend == "onnxruntime" else args.device, dist_info)
    precision = Precision.for_device(args.precision if backend == "torch" else "fp32", device)
    naming = _naming(args, resize)
    plan = plan_batch(args.inputs, args.output, naming, args.recursive)
    if not plan.jobs and not plan.refused:
        reasons = "; ".join(f"{p}: {why}" for p, why in plan.skipped[:2])
        raise CiaosrError(f"no images to process ({reasons})" if reasons else "no images to process")

    def fmt_of(job) -> str:
        dst = job.dst if str(job.dst) != STREAM else Path("stdout" + naming.extension(job.src))
        return output_format(dst, args.bit_depth or 8)

    for job in plan.jobs:  # unknown formats, 16 bits where they cannot be stored
        try:
            fmt_of(job)
        except CiaosrError as exc:
            hint = " (add --ext png)" if args.bit_depth == 16 and plan.many else ""
            raise CiaosrError(f"{exc}{hint}") from None
    to_stdout = any(str(job.dst) == STREAM for job in plan.jobs)
    if dist_info.enabled and (to_stdout or any(str(job.src) == STREAM for job in plan.jobs)):
        raise CiaosrError("'-' (stdin or stdout) takes one process: run it without torchrun")
    info = sys.stderr if to_stdout else sys.stdout

    # Under torchrun every process has made the same plan; each runs its share of it.
    group = ShardGroup.join(dist_info)
    finished = False
    try:
        code = _run_plan(args, plan, group, naming, resize, device, precision, fmt_of, info)
        finished = True
    finally:
        group.close(synchronise=finished)  # after an error the others may never come
    return code


def _run_plan(args, plan, group, naming, resize, device, precision, fmt_of, info) -> int:
    """Run this process's share of ``plan``; rank 0 shows the progress and the report
    of the whole run. The exit status, the same in every process: rank 0 has printed
    everything before it tells the others (torchrun stops the job when one fails)."""
    from .main import report_error
    from tqdm.auto import tqdm

    from ..atomic import make_output_folders
    from ..imageio import read_image, write_image
    from ..inference.batch import STREAM, output_bit_depth, output_pixels
    from ..inference.upscale import get_model, upscale_data

    group.same_items([(str(job.src), str(job.dst)) for job in plan.jobs])
    # Outputs that exist are left now, before any process writes one (``map`` waits for all).
    exists = group.map(len(plan.jobs), lambda i: args.skip_existing and str(plan.jobs[i].dst) != STREAM
                       and plan.jobs[i].dst.exists())
    todo = [i for i, found in enumerate(exists) if not found]
    if plan.many and args.output is not None:
        make_output_folders([args.output])

    model = None
    written = 0
    failures: list[str] = [f"{src}: {why}" for src, why in plan.refused]
    if group.is_main:
        for msg in failures:
            tqdm.write(f"error: {msg}", file=sys.stderr)
    checked_folders: dict[Path, str | None] = {}
    bar = tqdm(total=len(plan.jobs), unit="image", desc="upscale",
               disable=None if plan.many and group.is_main else True)

    def show(index: int, outcome: tuple) -> None:  # rank 0, as each image's outcome arrives
        nonlocal written
        kind, detail = outcome
        if kind == "written":
            written += 1
            tqdm.write(detail, file=info)
        elif kind == "failed" and plan.many:
            tqdm.write(f"error: {detail}", file=sys.stderr)
        bar.update(1)

    def check_folder(folder: Path) -> None:
        if folder not in checked_folders:
            try:
                make_output_folders([folder])
                checked_folders[folder] = None
            except CiaosrError as exc:
                checked_folders[folder] = str(exc)
        if checked_folders[folder] is not None:
            raise CiaosrError(checked_folders[folder])

    with tempfile.TemporaryDirectory(prefix="ciaosr-") as work, group.results(len(plan.jobs), show) as results:
        def skip(i: int) -> None:
            job = plan.jobs[i]
            results.put(i, ("skipped", (job.src, f"its output {job.dst} exists (--skip-existing)")))

        if group.is_main:
            for i, found in enumerate(exists):
                if found:
                    skip(i)
        try:
            for i in [todo[k] for k in group.share(len(todo), lambda k: output_pixels(plan.jobs[todo[k]], resize))]:
                job = plan.jobs[i]
                stream_out = str(job.dst) == STREAM
                dst = Path(work) / ("stdout" + naming.extension(job.src)) if stream_out else job.dst
                try:
                    t0 = time.perf_counter()
                    if not stream_out:
                        if job.dst.exists() and args.skip_existing:
                            skip(i)
                            continue
                        check_folder(job.dst.parent)
                        if job.dst.exists() and not args.overwrite:
                            raise CiaosrError(f"{job.dst}: already exists (--skip-existing to leave it, "
                                              f"--overwrite to replace it)")
                    if str(job.src) == STREAM:
                        data = read_image(_stdin_file(work), name="<stdin>")
                    else:
                        data = read_image(job.src)
                    h, w = resize.output_size((data.height, data.width), args.max_pixels)
                    fmt = fmt_of(job)
                    bits = output_bit_depth(data.bit_depth, fmt, args.bit_depth)
                    if data.alpha is not None and fmt == "JPEG":
                        raise CiaosrError(f"{job.src}: has transparency, which JPEG cannot store "
                                          f"(write PNG, WebP or TIFF)")
                except CiaosrError as exc:
                    results.put(i, ("failed", str(exc)))
                    continue
                if model is None:  # loaded on the first image that needs it; a bad model stops the run
                    model = get_model(args.model, device, args.backend)
                    if args.cmsr is not None:
                        from ..inference.cmsr import check_model

                        check_model(model)
                    if args.compile:
                        from ..compilation import compile_model

                        model = compile_model(model)
                try:
                    result = upscale_data(data, (h, w), model, device=device, precision=precision,
                                          tile=args.tile, progress=None, cmsr=getattr(args, "cmsr_tables", None))
                    write_image(dst, result, bits, args.overwrite, quality=args.quality, png_level=args.png_level)
                except CiaosrError as exc:
                    results.put(i, ("failed", f"{job.src}: {exc}" if str(job.src) not in str(exc) else str(exc)))
                    continue
                if stream_out:
                    _copy_to_stdout(dst)
                depth = ""
                if data.bit_depth == 16 or bits == 16:
                    depth = f", {bits}-bit" + (f" ({fmt} holds no more)" if bits < data.bit_depth else "")
                where = "stdout" if stream_out else job.dst
                src = "stdin" if str(job.src) == STREAM else job.src
                results.put(i, ("written", f"{src}: {data.width}x{data.height} -> {w}x{h} ({resize.description})"
                                           f"{depth}, {time.perf_counter() - t0:.2f} s -> {where}"))
            outcomes = results.gather()  # rank 0: every process's, once all are done
        except KeyboardInterrupt:
            bar.close()
            if plan.many and group.is_main:
                print(f"interrupted after {written} of {len(plan.jobs)} image(s); finished files are "
                      f"complete: rerun with --skip-existing to continue", file=sys.stderr)
            raise
        finally:
            bar.close()

    if not group.is_main:
        return group.announce()
    skipped = list(plan.skipped) + [d for kind, d in outcomes if kind == "skipped"]
    failures += [d for kind, d in outcomes if kind == "failed"]
    if failures and not plan.many:  # one input: its error is the command's
        report_error(failures[0])
        return group.announce(2)
    return group.announce(_summary(plan, written, skipped, failures, info))


def _summary(plan, written: int, skipped, failures, info) -> int:
    total = len(plan.jobs) + len(plan.refused)
    if skipped:
        print(f"skipped {len(skipped)}:", file=info)
        for path, why in skipped:
            print(f"  {path}: {why}", file=info)
    if plan.many:
        print(f"done: {written} written, {len(skipped)} skipped, {len(failures)} failed", file=info)
    if failures:
        print(f"error: {len(failures)} of {total} image(s) failed:", file=sys.stderr)
        for msg in failures:
            print(f"  {msg}", file=sys.stderr)
        return 1
    return 0


COMMAND = Command(
    "upscale", help="super-resolve images to any scale or size",
    description="Super-resolve images (PNG, JPEG, WebP, TIFF, BMP, GIF; grey, RGB, RGBA, 8 or 16 bit)\n"
                "to any scale or size, in memory-bounded tiles: files, folders, or stdin ('-').\n"
                "The model makes the axes that grow; then an axis that shrinks (a factor below 1,\n"
                "or a --size below the input) is resized with antialiased bicubic, so a pure\n"
                "downscale is exactly that resize. EXIF orientation is applied; the ICC profile,\n"
                "EXIF and DPI are kept where the output format can hold them. Animated or\n"
                "multi-page files are refused.\n\n"
                "Several processes (GPUs, machines): torchrun --nproc_per_node=N -m ciaosr upscale DIR -o OUT\n"
                "... splits the images over N processes (each on cuda:<LOCAL_RANK> with GPUs, else the\n"
                "CPU), balanced by output pixels; the files and the report are those of one process,\n"
                "and --skip-existing resumes a stopped run.",
    epilog=EXIT_CODES, raw=True,
    arguments=arguments, run=run)

"""Time and size of the PNG outputs ``ciaosr upscale`` writes, per zlib level.

Each image is upscaled (bicubic, Pillow) to 4096 x 4096, a stand-in for an upscaled
photo, and written through the project's writer (``ciaosr.imageio.write_image``) at
each ``--png-level``; the time includes the conversion to 8 bits and the write.

    python benchmarks/png_levels.py ../shared/datasets/Set14/HR/baboon.png ../shared/datasets/Set14/HR/lenna.png
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from PIL import Image

from ciaosr.imageio import read_image, write_image


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("images", nargs="+")
    p.add_argument("--levels", type=int, nargs="+", default=[1, 3, 6, 9])
    p.add_argument("--side", type=int, default=4096)
    args = p.parse_args()
    print("| image | level | write (s) | size (MiB) | time vs 6 | size vs 6 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        for path in args.images:
            with Image.open(path) as im:
                big = im.convert("RGB").resize((args.side, args.side), Image.BICUBIC)
            big.save(Path(tmp) / "big.png", compress_level=0)
            data = read_image(Path(tmp) / "big.png")
            rows = {}
            for level in args.levels:
                out = Path(tmp) / f"l{level}.png"
                t = time.perf_counter()
                write_image(out, data, 8, overwrite=True, png_level=level)
                rows[level] = (time.perf_counter() - t, out.stat().st_size / 2**20)
            base = rows.get(6)
            for level, (sec, mib) in rows.items():
                rel = f"{sec / base[0]:.2f}x | {mib / base[1]:.2f}x" if base else "- | -"
                print(f"| {Path(path).stem} | {level} | {sec:.2f} | {mib:.1f} | {rel} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

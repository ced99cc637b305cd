"""``ciaosr prepare-benchmark``: an alias of ``ciaosr data prepare --hr DIR`` (same
options, same result; it says so in one line on stderr once done). It makes the
MATLAB-bicubic LR folders of a folder of HR images; ``--out`` defaults to the folder
above ``--hr`` (so ``Set14/HR`` gets ``Set14/LR_bicubic``); existing files are kept
unless ``--overwrite``.
"""

from __future__ import annotations

import sys

from .command import Command
from .data import hr_args, overwrite_arg, scales_arg

ALIAS_NOTE = "note: ciaosr prepare-benchmark is an alias of `ciaosr data prepare --hr DIR`"


def arguments(p) -> None:
    hr_args(p, required=True)
    scales_arg(p)
    overwrite_arg(p)


def run(args) -> int:
    from .data import run_prepare_hr

    code = run_prepare_hr(args)
    print(ALIAS_NOTE, file=sys.stderr)
    return code


COMMAND = Command(
    "prepare-benchmark", help="alias of `ciaosr data prepare --hr DIR`: MATLAB-bicubic LR images "
                              "(LR_bicubic/X<s>/<name>x<s>.png) for a folder of HR images",
    description="An alias of `ciaosr data prepare --hr DIR`: make the EDSR-layout low-resolution folders "
                "of a folder of HR images with a MATLAB-exact bicubic resize.",
    arguments=arguments, run=run)

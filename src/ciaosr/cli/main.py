"""The ``ciaosr`` command: one sub-command per job.

Each sub-command module declares its ``COMMAND`` (``cli.command.Command``: name, help,
arguments, run), from which its parser is built; ``func`` in the parsed args is its
``run`` (taking the parsed args, returning an exit status). A ``CiaosrError``
anywhere, and any argument the parser refuses, becomes one line on stderr and exit
status 2, never a traceback; Ctrl-C is exit status 130.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib
import os
import sys
from importlib import metadata

from ..errors import CiaosrError

# Sub-command modules, in the order ``ciaosr --help`` lists them.
COMMANDS = ["upscale", "export", "models", "eval", "compare", "prepare_benchmark", "data", "train", "degrade", "serve",
            "cmsr_table"]


class _Parser(argparse.ArgumentParser):
    """argparse, but a refused argument is one line (``error: ...``), like every other
    usage error, instead of the usage text and the error."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


def share_malloc_arena() -> bool:
    """Make glibc's allocator serve every thread from one arena (``mallopt(M_ARENA_MAX,
    1)``, what ``MALLOC_ARENA_MAX=1`` sets). Upscaling 1024 x 1024 x4 peaked at 5.4 GiB
    with two threads against 1.1 GiB with one; with one arena the two-thread peak was
    lower in the runs measured (4.1 GiB at 1024) but still varies from run to run
    (docs/performance.md). Call it before the first parallel work: ``main`` does so first
    (torch-free, before any command imports torch). False where there is no glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        m_arena_max = -8
        return bool(ctypes.CDLL("libc.so.6").mallopt(m_arena_max, 1))
    except (OSError, AttributeError):
        return False


def report_error(message: str) -> None:
    """The one line a ``CiaosrError`` becomes (exit status 2)."""
    print(f"error: {message}", file=sys.stderr)


def torch_version() -> str:
    """torch's version, read from its installed metadata: importing torch takes seconds."""
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return "not installed"


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(
        prog="ciaosr", description="Arbitrary-scale image super-resolution (CiaoSR, LIIF, LTE, MetaSR, ITSRN)."
    )
    parser.add_argument("--version", action="version", version=f"ciaosr {__version__} (torch {torch_version()})")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"ciaosr.cli.{name}")
        except ModuleNotFoundError as exc:  # a sub-command not built yet
            if exc.name == f"ciaosr.cli.{name}":
                continue
            raise
        module.COMMAND.add_to(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    share_malloc_arena()  # before any parallel work: see its docstring
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, refused arguments: their status, printed already
        return exc.code if isinstance(exc.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CiaosrError as exc:
        report_error(str(exc))
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `ciaosr models | head`: the reader left, stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

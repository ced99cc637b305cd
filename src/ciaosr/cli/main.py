"""The ``ciaosr`` command: one sub-command per job.

Each sub-command module declares its ``COMMAND`` (``cli.command.Command``: name, help,
arguments, run), from which its parser is built; ``func`` in the parsed args is its
``run`` (taking the parsed args, returning an exit status). A ``CiaosrError``
anywhere, and any argument the parser refuses, becomes one line on stderr and exit
status 2, never a traceback; Ctrl-C is exit status 130.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from ..errors import CiaosrError

# Sub-command modules, in the order ``ciaosr --help`` lists them.
COMMANDS = ["upscale", "export", "models", "eval", "compare", "prepare_benchmark", "data", "train", "degrade", "serve",
            "cmsr_table"]


class _Parser(argparse.ArgumentParser):
    """argparse, but a refused argument is one line (``error: ...``), like every other
    usage error, instead of the usage text and the error."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


def report_error(message: str) -> None:
    """The one line a ``CiaosrError`` becomes (exit status 2)."""
    print(f"error: {message}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    import torch

    from .. import __version__

    parser = _Parser(
        prog="ciaosr", description="Arbitrary-scale image super-resolution (CiaoSR, LIIF, LTE, MetaSR, ITSRN)."
    )
    parser.add_argument("--version", action="version", version=f"ciaosr {__version__} (torch {torch.__version__})")
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
    from ..runtime import share_malloc_arena

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

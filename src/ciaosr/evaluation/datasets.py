"""The test sets ``ciaosr eval`` knows by name: their spellings, how they are scored, their size.

Every set lives in its own folder of ``--data-root`` in the EDSR benchmark layout
(``<set>/HR/<name>.png``, optional ``<set>/LR_bicubic/X<s>/<name>x<s>.png``; see
``ciaosr.data.benchmark``), as ``ciaosr data prepare`` writes it (``DIV2K-valid/``,
``Manga109/``, ...; ``ciaosr.datasets.catalog``). A name is matched to a folder through the set's aliases,
then case-insensitively; a folder of any other name is still a test set, scored on Y.

* Set5, Set14, B100 (BSDS100), Urban100, Manga109: Y of the difference, shave s.
* DIV2K validation (images 0801-0900): all RGB channels, shave s + 6 (LIIF protocol).
  x2-x4 use the official bicubic LR (``DIV2K_valid_LR_bicubic/X<s>/0801x<s>.png``,
  the same names as the EDSR layout) when ``LR_bicubic`` holds it, else the identical
  MATLAB-bicubic LR made on the fly; other scales the on-the-fly PIL rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import CiaosrError


@dataclass(frozen=True)
class EvalSet:
    name: str  # the canonical spelling, used in tables
    folders: tuple[str, ...]  # folder names tried in order under the data root
    images: int  # the number of HR images of the full set
    rgb: bool = False  # PSNR on all RGB channels with shave s + 6 (LIIF protocol), else Y with shave s
    about: str = ""

    def aliases(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.name, *self.folders)))


EVAL_SETS: tuple[EvalSet, ...] = (
    EvalSet("Set5", ("Set5",), 5, about="Bevilacqua et al. 2012"),
    EvalSet("Set14", ("Set14",), 14, about="Zeyde et al. 2010"),
    EvalSet("B100", ("B100", "BSDS100", "BSD100"), 100, about="BSD300 test split (Martin et al. 2001)"),
    EvalSet("Urban100", ("Urban100",), 100, about="Huang et al. 2015"),
    EvalSet("Manga109", ("Manga109",), 109, about="Matsui et al. 2017; not freely downloadable"),
    EvalSet("DIV2K", ("DIV2K-valid", "DIV2K_valid", "DIV2K-val", "DIV2K_val", "DIV2K"), 100, rgb=True,
            about="DIV2K validation, images 0801-0900 (Agustsson and Timofte 2017)"),
)


def find_eval_set(name: str) -> EvalSet | None:
    """The known set ``name`` spells (any alias, any case), or None."""
    low = name.lower()
    for es in EVAL_SETS:
        if low in (a.lower() for a in es.aliases()):
            return es
    return None


def known_names() -> str:
    return ", ".join(es.name for es in EVAL_SETS)


def is_rgb_dataset(name: str) -> bool:
    """DIV2K validation is scored on RGB under the LIIF protocol; the rest on Y. Any
    set whose name starts with ``DIV2K`` (a sample of it, say) counts as DIV2K."""
    es = find_eval_set(name)
    return es.rgb if es is not None else name.lower().startswith("div2k")


def _is_set_folder(d: Path) -> bool:
    return (d / "HR").is_dir() or (d / "GTmod12").is_dir()


def resolve_dataset(root: Path, name: str) -> Path:
    """The folder of test set ``name`` under ``root``: the name itself, then the known
    set's other folder names, each as spelled and then in any case; a folder holding
    ``HR/`` (or ``GTmod12/``) comes before one that does not. An unknown name is a
    one-line error listing the known sets and the set folders found under ``root``."""
    root = Path(root)
    es = find_eval_set(name)
    candidates = list(dict.fromkeys([name, *(es.folders if es else ())]))
    folders = [p for p in root.iterdir() if p.is_dir()]
    lowered = {p.name.lower(): p for p in folders}
    matches = [d for cand in candidates for d in (root / cand, lowered.get(cand.lower())) if d is not None and d.is_dir()]
    for d in sorted(matches, key=lambda d: not _is_set_folder(d)):  # stable: the candidates' order otherwise
        return d
    found = sorted(p.name for p in folders if _is_set_folder(p))
    hint = f"; set folders under it: {', '.join(found)}" if found else ""
    if es is None:
        raise CiaosrError(f"unknown dataset '{name}': no folder {root / name} (known sets: {known_names()}{hint})")
    raise CiaosrError(f"dataset {es.name} not found under {root} (looked for {', '.join(candidates)}{hint})")

"""The one table of the data sets ``ciaosr data`` knows: where each comes from, what it
holds and where its files go under the data root.

Every fact here is published somewhere, and says where; what is not known is ``None``,
never a guess. Checksums are those published for the archive (DIV2K, Flickr2K and the
benchmark archive: MD5 in torchSR's dataset code, Coloquinte/torchSR@99674a4, which
downloads the same URLs) or measured on the file itself (RealSRSet: SHA-256 of the
files of cszn/BSRGAN at the commit the URLs name). Exact archive sizes are not
published by the hosts as far as we know: the downloader takes the size the server
announces (Content-Length) and checks the disk for it.

Layout under the data root: every set is ``<root>/<folder>/HR/<name>.png`` (plus
``LR_bicubic/X<s>/<name>x<s>.png`` where the source has it), the EDSR benchmark layout
``ciaosr eval`` and the training configs read; RealSRSet (no ground truth) is
``<root>/RealSRSet/LR/<name>.png``.

The test sets ``ciaosr eval`` knows by name (``EvalSet``: Set5, Set14, B100, Urban100,
Manga109, DIV2K validation) are declared here too, each once, in the entry of the
source that provides it, with its folder names, image count and how it is scored:

* Set5, Set14, B100 (BSDS100), Urban100, Manga109: Y of the difference, shave s.
* DIV2K validation (images 0801-0900): all RGB channels, shave s + 6 (LIIF protocol).

``find_eval_set``, ``eval_set_names`` and ``is_rgb_dataset`` are lookups in it; a
folder of any other name is still a test set, scored on Y (``layout.resolve_dataset``
finds a set's folder under a data root).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from ...errors import CiaosrError

GIB = 2 ** 30


@dataclass(frozen=True)
class Download:
    """One file to fetch: ``<base_url><path>``.

    ``unpack`` maps archive folders to folders under the data root (``None``: the file
    itself is the data, saved as ``<dest>/<name>``); members outside these folders are
    not extracted. ``max_unpacked`` is the bound an archive may expand to (its selected
    members' declared sizes, and the bytes really written).
    """

    path: str
    unpack: tuple[tuple[str, str], ...] | None = None
    dest: str | None = None  # a plain file's folder under the root
    md5: str | None = None
    sha256: str | None = None
    size: int | None = None  # bytes, where known
    max_unpacked: int | None = None

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def is_archive(self) -> bool:
        return self.unpack is not None


@dataclass(frozen=True)
class Folder:
    """A folder of the set under the data root, with its number of images and, where
    the names follow a rule, the names (so a check can say which are missing)."""

    path: str
    count: int
    names: tuple[str, ...] | None = None


@dataclass(frozen=True)
class EvalSet:
    """A test set ``ciaosr eval`` scores by name, as the source it comes with lays it
    out under the data root (``<folder>/HR``, ``<folder>/LR_bicubic/X<s>``)."""

    name: str  # the canonical spelling, used in tables
    folder: str  # its folder under the data root, as ``ciaosr data`` writes it
    images: int  # the number of HR images of the full set
    rgb: bool = False  # PSNR on all RGB channels with shave s + 6 (LIIF protocol), else Y with shave s
    aliases: tuple[str, ...] = ()  # other folder names it goes by, tried after ``folder``
    about: str = ""  # where it was published

    @property
    def folders(self) -> tuple[str, ...]:
        """The folder names tried in order under a data root."""
        return tuple(dict.fromkeys((self.folder, *self.aliases)))

    def spellings(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.name, *self.folders)))

    def layout(self, scales=(2, 3, 4), names=None) -> tuple[Folder, ...]:
        """Its HR folder and its ``LR_bicubic/X<s>`` folders; ``names(suffix)`` gives the
        file names where they follow a rule (``suffix`` is ``""`` for HR, ``x<s>``)."""
        return (Folder(f"{self.folder}/HR", self.images, names("") if names else None),
                *(Folder(f"{self.folder}/LR_bicubic/X{s}", self.images, names(f"x{s}") if names else None)
                  for s in scales))


@dataclass(frozen=True)
class DataSet:
    name: str
    about: str
    folders: tuple[Folder, ...]
    base_url: str | None = None  # None: cannot be downloaded (prepare takes the user's copy)
    downloads: tuple[Download, ...] = ()
    aliases: tuple[str, ...] = ()
    checksum_source: str = ""
    size_note: str = ""  # what is published about the download's size
    licence: str = ""
    used_for: str = ""  # the paper's tables (docs/reproduce.md)
    eval_sets: tuple[EvalSet, ...] = ()  # the test sets it provides (``prepare`` adds LR / GTmod12 to them)
    training_set: bool = False  # ``prepare --sub-images`` applies

    @property
    def fetchable(self) -> bool:
        return self.base_url is not None

    @property
    def eval_set(self) -> bool:
        return bool(self.eval_sets)

    @property
    def images(self) -> int:
        return sum(f.count for f in self.folders)

    @property
    def set_folders(self) -> tuple[str, ...]:
        """The folders directly under the data root this set owns (``Set5``, ...)."""
        return tuple(dict.fromkeys(f.path.split("/", 1)[0] for f in self.folders))

    def hr_folders(self) -> tuple[Folder, ...]:
        return tuple(f for f in self.folders if f.path.endswith("/HR"))


def _numbered(first: int, last: int, digits: int, suffix: str = "") -> tuple[str, ...]:
    return tuple(f"{i:0{digits}d}{suffix}.png" for i in range(first, last + 1))


def _manga109_titles() -> tuple[str, ...]:
    text = (Path(__file__).with_name("manga109_titles.txt")).read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


DIV2K_URL = "http://data.vision.ee.ethz.ch/cvl/DIV2K/"
EDSR_URL = "https://cv.snu.ac.kr/research/EDSR/"
BSRGAN_COMMIT = "5ce1a9c6ae292f30ccfce4b597ecb73c70401733"
TORCHSR = "MD5 as published in Coloquinte/torchSR (torchsr/datasets/div2k.py, flickr2k.py, set5.py ...)"
DIV2K_LICENCE = "research use (DIV2K terms, data.vision.ee.ethz.ch/cvl/DIV2K)"

DIV2K_VALID = EvalSet("DIV2K", "DIV2K-valid", 100, rgb=True, aliases=("DIV2K_valid", "DIV2K-val", "DIV2K_val", "DIV2K"),
                      about="DIV2K validation, images 0801-0900 (Agustsson and Timofte 2017)")
BENCHMARK_SETS = (
    EvalSet("Set5", "Set5", 5, about="Bevilacqua et al. 2012"),
    EvalSet("Set14", "Set14", 14, about="Zeyde et al. 2010"),
    EvalSet("B100", "B100", 100, aliases=("BSDS100", "BSD100"), about="BSD300 test split (Martin et al. 2001)"),
    EvalSet("Urban100", "Urban100", 100, about="Huang et al. 2015"),
)
MANGA109 = EvalSet("Manga109", "Manga109", 109, about="Matsui et al. 2017; not freely downloadable")

DATASETS: tuple[DataSet, ...] = (
    DataSet(
        "DIV2K-train", "DIV2K training HR, images 0001-0800 (Agustsson and Timofte 2017)",
        folders=(Folder("DIV2K-train/HR", 800, _numbered(1, 800, 4)),),
        base_url=DIV2K_URL,
        downloads=(Download("DIV2K_train_HR.zip", (("DIV2K_train_HR", "DIV2K-train/HR"),),
                            md5="bdc2d9338d4e574fe81bf7d158758658", max_unpacked=8 * GIB),),
        aliases=("DIV2K_train", "DIV2K_train_HR", "DIV2K-train-HR"),
        checksum_source=TORCHSR, licence=DIV2K_LICENCE,
        used_for="training of every model (Tables 1-3, 6-8)", training_set=True),
    DataSet(
        "DIV2K-valid", "DIV2K validation HR, images 0801-0900, with the official bicubic LR x2, x3, x4",
        folders=DIV2K_VALID.layout(names=lambda suffix: _numbered(801, 900, 4, suffix)),
        base_url=DIV2K_URL,
        downloads=(
            Download("DIV2K_valid_HR.zip", (("DIV2K_valid_HR", "DIV2K-valid/HR"),),
                     md5="9fcdda83005c5e5997799b69f955ff88", max_unpacked=2 * GIB),
            *(Download(f"DIV2K_valid_LR_bicubic_X{s}.zip",
                       ((f"DIV2K_valid_LR_bicubic/X{s}", f"DIV2K-valid/LR_bicubic/X{s}"),),
                       md5=md5, max_unpacked=GIB)
              for s, md5 in ((2, "1512c9a3f7bde2a1a21a73044e46b9cb"), (3, "18b1d310f9f88c13618c287927b29898"),
                             (4, "21962de700c8d368c6ff83314480eff0")))),
        aliases=("DIV2K_valid", "DIV2K-val", "DIV2K_val"),
        checksum_source=TORCHSR, licence=DIV2K_LICENCE,
        used_for="Table 1 (ciaosr eval set DIV2K)", eval_sets=(DIV2K_VALID,)),
    DataSet(
        "Flickr2K", "Flickr2K HR, images 000001-002650 (Lim et al. 2017); only the HR is unpacked",
        folders=(Folder("Flickr2K/HR", 2650, _numbered(1, 2650, 6)),),
        base_url=EDSR_URL,
        downloads=(Download("Flickr2K.tar", (("Flickr2K/Flickr2K_HR", "Flickr2K/HR"),),
                            md5="5d3f39443d5e9489bff8963f8f26cb03", max_unpacked=16 * GIB),),
        aliases=("Flickr2K_HR",), checksum_source=TORCHSR,
        licence="research use (EDSR authors' collection of Flickr images)",
        used_for="the real-world model's DF2K training data (Table 9); not the PSNR tables",
        training_set=True),
    DataSet(
        "benchmark", "Set5, Set14, B100, Urban100: HR and MATLAB-bicubic LR x2, x3, x4 "
                     "(the EDSR authors' benchmark.tar, used by EDSR, LIIF, LTE and most SR code)",
        folders=tuple(f for es in BENCHMARK_SETS for f in es.layout()),
        base_url=EDSR_URL,
        downloads=(Download("benchmark.tar", tuple((f"benchmark/{es.folder}/{sub}", f"{es.folder}/{sub}")
                                                  for es in BENCHMARK_SETS for sub in ("HR", "LR_bicubic")),
                            md5="4ace41d33c2384b97e6b320cd0afd6ba", max_unpacked=GIB),),
        aliases=("benchmarks", *(es.name for es in BENCHMARK_SETS)),
        checksum_source=TORCHSR, size_note="about 250 MB (EDSR-PyTorch README)",
        licence="research use (each set its authors' terms)",
        used_for="Tables 2, 3, 6 (Urban100), 8 (Urban100); Set5 validates training runs",
        eval_sets=BENCHMARK_SETS),
    DataSet(
        "Manga109", "109 two-page spreads, one per title (Matsui et al. 2017). Not freely downloadable: "
                    "request it at manga109.org, then `ciaosr data prepare Manga109 --from DIR`",
        folders=MANGA109.layout(scales=()),
        licence="academic use after a request to the Manga109 authors",
        used_for="Tables 2, 3, 6 (Manga109 columns)", eval_sets=(MANGA109,)),
    DataSet(
        "RealSRSet", "20 real low-quality images without ground truth (Zhang et al., BSRGAN 2021)",
        folders=(Folder("RealSRSet/LR", 20),),
        base_url=f"https://raw.githubusercontent.com/cszn/BSRGAN/{BSRGAN_COMMIT}/testsets/RealSRSet/",
        aliases=("RealSR-Set", "realsrset"),
        checksum_source=f"SHA-256 of the files of cszn/BSRGAN@{BSRGAN_COMMIT[:7]} (measured 2026-12-03)",
        licence="Apache-2.0 repository (cszn/BSRGAN); images from various sources",
        used_for="Table 9 (no-reference NIQE, BRISQUE, PIQE at x8, x16)"),
)


@dataclass(frozen=True)
class KnownFile:
    """Facts about one file: its image size and the SHA-256 of one public copy."""

    path: str  # under the data root
    width: int
    height: int
    sha256: str
    size: int | None
    origin: str  # the repository@commit the hash was measured on

    def same_source(self, dataset: DataSet) -> bool:
        """True when the hash is of the very copy the set is downloaded from (a
        mismatch then means a damaged file); otherwise it is another public copy,
        which may hold the same pixels in other bytes."""
        return dataset.base_url is not None and dataset.base_url.startswith(
            f"https://raw.githubusercontent.com/{self.origin.split('@')[0]}/")


@lru_cache(maxsize=1)
def known_files() -> dict[str, KnownFile]:
    """``known_files.tsv`` (package data): path under the root -> facts."""
    out = {}
    with open(Path(__file__).with_name("known_files.tsv"), encoding="utf-8", newline="") as f:
        for row in csv.DictReader((line for line in f if not line.startswith("#")), delimiter="\t"):
            out[row["path"]] = KnownFile(row["path"], int(row["width"]), int(row["height"]), row["sha256"],
                                         int(row["bytes"]) if row["bytes"] else None, row["origin"])
    return out


def _with_files(ds: DataSet) -> DataSet:
    """RealSRSet's downloads and names come from the known-files table."""
    if ds.name != "RealSRSet":
        return ds
    files = sorted(k for k in known_files() if k.startswith("RealSRSet/LR/"))
    names = tuple(k.rsplit("/", 1)[-1] for k in files)
    known = known_files()
    downloads = tuple(Download(n, dest="RealSRSet/LR", sha256=known[k].sha256, size=known[k].size)
                      for n, k in zip(names, files))
    folders = (Folder("RealSRSet/LR", len(names), names),)
    return replace(ds, downloads=downloads, folders=folders)


def _key(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


def all_datasets() -> tuple[DataSet, ...]:
    return tuple(_with_files(ds) for ds in DATASETS)


def known_names() -> str:
    return ", ".join(ds.name for ds in DATASETS)


def find_dataset(name: str) -> DataSet:
    """The set ``name`` spells (its name or an alias, any case, ignoring ``-`` and
    ``_``); an unknown name is a one-line error listing the known ones."""
    key = _key(name)
    for ds in all_datasets():
        if key in {_key(a) for a in (ds.name, *ds.aliases)}:
            return ds
    raise CiaosrError(f"unknown data set '{name}' (known: {known_names()})")


def manga109_titles() -> tuple[str, ...]:
    return _manga109_titles()


def all_eval_sets() -> tuple[EvalSet, ...]:
    """The test sets ``ciaosr eval`` knows by name, those of every catalog entry."""
    return tuple(es for ds in DATASETS for es in ds.eval_sets)


def eval_set_names() -> str:
    return ", ".join(es.name for es in all_eval_sets())


def find_eval_set(name: str) -> EvalSet | None:
    """The known test set ``name`` spells (its name or a folder name, any case), or None."""
    low = name.lower()
    for es in all_eval_sets():
        if low in (a.lower() for a in es.spellings()):
            return es
    return None


def is_rgb_dataset(name: str) -> bool:
    """DIV2K validation is scored on RGB under the LIIF protocol; the rest on Y. Any
    set whose name starts with ``DIV2K`` (a sample of it, say) counts as DIV2K."""
    es = find_eval_set(name)
    return es.rgb if es is not None else name.lower().startswith("div2k")


__all__ = ["DATASETS", "DataSet", "Download", "EvalSet", "Folder", "KnownFile", "all_datasets", "all_eval_sets",
           "eval_set_names", "find_dataset", "find_eval_set", "is_rgb_dataset", "known_files", "known_names",
           "manga109_titles"]

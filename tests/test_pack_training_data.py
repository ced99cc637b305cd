"""scripts/pack_training_data.py on a small shared folder made here: what is packed, that
it is deterministic, byte-exact where it copies, and that it never replaces a folder
unasked."""

from __future__ import annotations

import hashlib
import importlib.util
import json

import numpy as np
import pytest
from PIL import Image

from conftest import REPO

spec = importlib.util.spec_from_file_location("pack_training_data", REPO / "scripts" / "pack_training_data.py")
pack_script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pack_script)


def image(path, w, h, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(max(h // 16, 1), max(w // 16, 1), 3), dtype=np.uint8)
    Image.fromarray(small).resize((w, h), Image.BICUBIC).save(path)


@pytest.fixture
def shared(tmp_path):
    root = tmp_path / "shared"
    d = root / "datasets"
    image(d / "DIV2K-mini" / "HR" / "0001.png", 600, 400, 1)
    image(d / "DIV2K-mini" / "HR" / "0002.png", 400, 500, 2)
    image(d / "Flickr2K-mini" / "HR" / "000001.png", 500, 420, 3)
    for k, name in enumerate(["baby", "bird"]):
        image(d / "Set5" / "HR" / f"{name}.png", 120, 96, 10 + k)
        image(d / "Set5" / "LR_bicubic" / "X4" / f"{name}x4.png", 30, 24, 20 + k)
    image(d / "Set14" / "HR" / "zebra.png", 90, 60, 30)
    for k in range(3):
        image(d / "B100" / "HR" / f"{100 + k}.png", 81, 54, 40 + k)
        image(d / "Urban100" / "HR" / f"img_00{k + 1}.png", 300, 220, 50 + k)
    return root


def run(shared, out, *extra):
    return pack_script.main(["--shared", str(shared), "--out", str(out), "--no-wheels", "--tile", "192",
                             "--train-mib", "0.2", "--b100", "2", "--urban100", "2", "--urban-crop", "200", *extra])


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_pack_contents_and_manifest(shared, tmp_path, capsys):
    out = tmp_path / "packed"
    assert run(shared, out) == 0
    m = json.loads((out / "MANIFEST.json").read_text())
    assert m["eval_sets"] == ["Set5", "Set14", "B100-first2", "Urban100-first2-crop200"]
    listed = {f["path"]: f for f in m["files"]}
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.name != "MANIFEST.json"}
    assert set(listed) == on_disk
    assert all(sha(out / p) == f["sha256"] and (out / p).stat().st_size == f["bytes"] for p, f in listed.items())
    # benchmark images: copied byte for byte; subsets are the first images by name
    d = shared / "datasets"
    assert sha(out / "datasets/Set5/LR_bicubic/X4/birdx4.png") == sha(d / "Set5/LR_bicubic/X4/birdx4.png")
    assert sorted(p.name for p in (out / "datasets/B100-first2/HR").iterdir()) == ["100.png", "101.png"]
    # Urban100: the centre crop
    crop = np.asarray(Image.open(out / "datasets/Urban100-first2-crop200/HR/img_001.png"))
    whole = np.asarray(Image.open(d / "Urban100/HR/img_001.png"))
    assert crop.shape == (200, 200, 3) and np.array_equal(crop, whole[10:210, 50:250])
    # training tiles: under the sets' own names, each the pixels of its box, within the budget
    tiles = [f for f in m["files"] if f["path"].startswith(("datasets/DIV2K-mini", "datasets/Flickr2K-mini"))]
    train = m["parts"]["train"]
    assert train["of"] == 6 + 4 + 4 and 1 <= train["tiles"] == len(tiles) < train["of"]
    assert sum(f["bytes"] for f in tiles) <= 0.2 * 2 ** 20
    for f in tiles:
        x0, y0, x1, y1 = f["crop_box_xyxy"]
        src = np.asarray(Image.open(d / f["source"]))
        assert np.array_equal(np.asarray(Image.open(out / f["path"])), src[y0:y1, x0:x1])
    assert "packed" in capsys.readouterr().out


def test_pack_is_deterministic(shared, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert run(shared, a) == 0 and run(shared, b) == 0
    assert json.loads((a / "MANIFEST.json").read_text()) == json.loads((b / "MANIFEST.json").read_text())


def test_pack_never_replaces_unasked(shared, tmp_path, capsys):
    out = tmp_path / "packed"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    assert run(shared, out) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "--overwrite" in err
    assert run(shared, out, "--overwrite") == 2  # not a pack folder: left alone even then
    assert "no MANIFEST.json" in capsys.readouterr().err and (out / "mine.txt").read_text() == "keep me"

    fresh = tmp_path / "fresh"
    assert run(shared, fresh) == 0
    before = (fresh / "MANIFEST.json").read_text()
    assert run(shared, fresh, "--overwrite") == 0 and (fresh / "MANIFEST.json").read_text() == before


def test_pack_errors(shared, tmp_path, capsys):
    assert run(shared, tmp_path / "p", "--max-mib", "0.01") == 2
    assert "over --max-mib" in capsys.readouterr().err and not (tmp_path / "p").exists()
    assert run(tmp_path / "nowhere", tmp_path / "q") == 2
    assert "shared data not found" in capsys.readouterr().err
    assert run(shared, tmp_path / "r", "--tile", "100") == 2
    assert "--tile must be at least 192" in capsys.readouterr().err

"""``ciaosr eval`` with LPIPS and the no-reference metrics: benchmark sets and folders of
real low-resolution images without HR (the real-world setting)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from ciaosr.cli.main import main
from ciaosr.metrics import brisque, lpips, niqe, piqe
from ciaosr.metrics.lpips import BACKBONE_FILES
from ciaosr.metrics.psnr import shave

from test_lpips import random_backbone


def _run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _one_line_error(rc, err, needle):
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err


def _png(path) -> np.ndarray:
    return np.array(Image.open(path).convert("RGB"))


@pytest.fixture
def no_hub(tmp_path, monkeypatch):
    """A torch hub cache without the LPIPS backbones."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))


@pytest.fixture
def lr_folder(shared, tmp_path):
    """Two real low-resolution images without HR (Set5 LR x4: 128 x 128 and 72 x 57)."""
    src = shared("datasets/Set5/LR_bicubic/X4")
    d = tmp_path / "real"
    d.mkdir()
    for name in ("babyx4.png", "birdx4.png"):
        shutil.copy(src / name, d / name)
    return d


def test_no_reference_folder_per_image_and_means(lr_folder, tmp_path, capsys):
    js, saved = tmp_path / "nr.json", tmp_path / "out"
    rc, out, _ = _run(capsys, "eval", "--model", "bicubic", "--input", lr_folder, "--scales", "3", "4",
                      "--json", js, "--save-images", saved, "--device", "cpu")
    assert rc == 0 and "NIQE / BRISQUE / PIQE" in out and "| real |" in out
    rep = json.loads(js.read_text())
    assert rep["metrics"] == ["niqe", "brisque", "piqe"] and rep["input"] == str(lr_folder)
    assert rep["metric_settings"]["niqe"]["channel"].startswith("y") and rep["metric_settings"]["niqe"]["block"] == 96
    assert rep["metric_settings"]["piqe"]["channel"].startswith("gray")
    for label in ("3", "4"):
        e = rep["results"]["real"][label]
        assert e["num_images"] == 2 and set(e["per_image"]) == {"babyx4", "birdx4"}
        for name, vals in e["per_image"].items():
            img = _png(saved / "real" / f"X{label}" / f"{name}.png")
            lr = _png(lr_folder / f"{name}.png")
            assert img.shape[:2] == (lr.shape[0] * int(label), lr.shape[1] * int(label))
            assert vals["niqe"] == pytest.approx(niqe(img), abs=1e-9)
            assert vals["brisque"] == pytest.approx(brisque(img), abs=1e-9)
            assert vals["piqe"] == pytest.approx(piqe(img), abs=1e-9)
        for m in ("niqe", "brisque", "piqe"):
            assert e[m] == pytest.approx(np.mean([v[m] for v in e["per_image"].values()]), abs=1e-12)


def test_no_reference_mode_refuses_full_reference_metrics_and_bad_folders(lr_folder, tmp_path, capsys):
    rc, _, err = _run(capsys, "eval", "--model", "bicubic", "--input", lr_folder, "--metrics", "psnr", "niqe")
    _one_line_error(rc, err, "psnr needs the HR images")
    rc, _, err = _run(capsys, "eval", "--model", "bicubic", "--input", tmp_path / "nope")
    _one_line_error(rc, err, "not a folder")
    (tmp_path / "empty").mkdir()
    rc, _, err = _run(capsys, "eval", "--model", "bicubic", "--input", tmp_path / "empty")
    _one_line_error(rc, err, "no images in")


def test_benchmark_with_lpips_and_no_reference_metrics(shared, tmp_path, capsys):
    root = shared("datasets")
    shared("datasets/Set5")
    weights = tmp_path / BACKBONE_FILES["alex"]
    random_backbone("alex", weights)
    js, saved = tmp_path / "r.json", tmp_path / "out"
    rc, out, _ = _run(capsys, "eval", "--model", "bicubic", "--data-root", root, "--datasets", "Set5",
                      "--scales", "4", "--metrics", "psnr", "lpips", "niqe", "--lpips-weights", weights,
                      "--protocol", "mmedit", "--json", js, "--save-images", saved, "--device", "cpu")
    assert rc == 0 and "PSNR / LPIPS / NIQE" in out
    rep = json.loads(js.read_text())
    assert rep["metrics"] == ["psnr", "lpips", "niqe"] and rep["skipped"] == {}
    s = rep["metric_settings"]["lpips"]
    assert s["net"] == "alex" and s["version"] == "0.1" and s["backbone_weights"] == BACKBONE_FILES["alex"]
    e = rep["results"]["Set5"]["4"]
    hr = torch.from_numpy(_png(root / "Set5" / "HR" / "butterfly.png")).permute(2, 0, 1)
    sr = torch.from_numpy(_png(saved / "Set5" / "X4" / "butterfly.png")).permute(2, 0, 1)
    per = e["per_image"]["butterfly"]
    assert list(per) == ["psnr", "lpips", "niqe"]
    # mmedit protocol: the output is rounded to 8 bits, as saved; HR cropped to a multiple of 12.
    assert sr.shape[1:] == (252, 252)
    assert per["lpips"] == pytest.approx(lpips(shave(sr, 4), shave(hr[:, :252, :252], 4), "alex", weights),
                                         rel=1e-6)
    assert per["lpips"] > 0 and per["niqe"] == pytest.approx(niqe(sr.permute(1, 2, 0).numpy()), abs=1e-9)


def test_lpips_without_backbone_weights_stops_before_any_work(shared, no_hub, tmp_path, capsys):
    root = shared("datasets")
    js = tmp_path / "r.json"
    # The model does not exist either: LPIPS is checked first, before the model is loaded.
    rc, _, err = _run(capsys, "eval", "--model", tmp_path / "missing.pth", "--data-root", root, "--datasets", "Set5",
                      "--scales", "4", "--metrics", "psnr", "lpips", "--json", js)
    _one_line_error(rc, err, "alexnet-owt-7be5be79.pth")
    assert "put the file there" in err and not js.exists()


def test_skip_unavailable_drops_lpips_and_says_so(shared, no_hub, tmp_path, capsys):
    root = shared("datasets")
    shared("datasets/Set5")
    js = tmp_path / "r.json"
    rc, _, err = _run(capsys, "eval", "--model", "bicubic", "--data-root", root, "--datasets", "Set5",
                      "--scales", "4", "--metrics", "psnr", "lpips", "--lpips-net", "vgg", "--skip-unavailable",
                      "--json", js, "--device", "cpu")
    assert rc == 0 and "warning: lpips skipped" in err and "vgg16-397923af.pth" in err
    rep = json.loads(js.read_text())
    assert rep["metrics"] == ["psnr"] and "vgg16-397923af.pth" in rep["skipped"]["lpips"]
    rc, _, err = _run(capsys, "eval", "--model", "bicubic", "--data-root", root, "--datasets", "Set5",
                      "--scales", "4", "--metrics", "lpips", "--skip-unavailable")
    _one_line_error(rc, err, "no metric left")


def test_input_and_data_root_exclude_each_other(shared, lr_folder, capsys):
    rc = main(["eval", "--input", str(lr_folder), "--data-root", str(lr_folder)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "not allowed with" in err[0]

"""ciaosr data verify | prepare | list on small generated images named like the real ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ciaosr.cli.main import main
from ciaosr.data.benchmark import load_rgb, matlab_downscale, modcrop
from ciaosr.data.sets.catalog import find_dataset, known_files, manga109_titles
from ciaosr.data.sets.layout import describe_missing
from ciaosr.data.sets.prepare import make_sub_images
from ciaosr.data.sets.verify import verify
from ciaosr.errors import CiaosrError
from ciaosr.imageio import write_tensor_png


def save(path: Path, w: int, h: int, seed: int, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path, format=fmt)
    return path


def div2k_valid(root: Path, lr: bool = True) -> None:
    """DIV2K validation named as the real one: HR 0801-0900 (30 x 27 here), official LR x2-x4."""
    for i in range(801, 901):
        save(root / f"DIV2K-valid/HR/{i:04d}.png", 30, 27, i)
        if lr:
            for s in (2, 3, 4):
                save(root / f"DIV2K-valid/LR_bicubic/X{s}/{i:04d}x{s}.png", 30 // s, 27 // s, i * 10 + s)


def test_verify_a_complete_set_then_missing_and_damaged_files(tmp_path, capsys):
    div2k_valid(tmp_path)
    ds = find_dataset("div2k_valid")
    rep = verify(ds, tmp_path, progress=False)
    assert rep.ok and rep.folders["DIV2K-valid/HR"] == 100 and sum(rep.folders.values()) == 400
    (tmp_path / "DIV2K-valid/HR/0805.png").unlink()
    (tmp_path / "DIV2K-valid/LR_bicubic/X3/0899x3.png").unlink()
    bad = tmp_path / "DIV2K-valid/HR/0850.png"
    bad.write_bytes(bad.read_bytes()[:-40])  # truncated
    assert main(["data", "verify", "DIV2K-valid", "--root", str(tmp_path), "--quiet"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert "problem: DIV2K-valid/HR: found 99 of 100 images (missing: 0805.png)" in out
    assert "problem: DIV2K-valid/LR_bicubic/X3: found 99 of 100 images (missing: 0899x3.png)" in out
    assert any(line.startswith("problem: DIV2K-valid/HR/0850.png: does not open as an image") for line in out)
    assert out[-1].startswith("DIV2K-valid: 3 problem(s); 398 image(s) in 4 folder(s)")


def test_verify_known_sizes_and_hashes(tmp_path):
    """RealSRSet's hashes are of the very files it is downloaded from: a difference is a
    problem. Set5's are of another public copy: a difference is a note, the size still counts."""
    known = known_files()
    real = find_dataset("RealSRSet")
    for n, name in enumerate(real.folders[0].names):
        k = known[f"RealSRSet/LR/{name}"]
        save(tmp_path / "RealSRSet/LR" / name, k.width + (n == 0), k.height, n)
    rep = verify(real, tmp_path, progress=False)
    assert rep.problems[0] == "RealSRSet/LR/Lincoln.png: 161x160 pixels, expected 160x160"
    assert len(rep.problems) == 20 and all("SHA-256 differs from the source's (cszn/BSRGAN@" in p
                                           for p in rep.problems[1:])
    # Set5 copied byte for byte from the shared data matches; a re-encoded one is a note only
    bench = find_dataset("Set5")
    for rel, k in known.items():
        if rel.startswith("Set5/"):
            save(tmp_path / rel, k.width, k.height, 0)
    rep = verify(bench, tmp_path, progress=False)
    assert not any(p.startswith("Set5/") for p in rep.problems)
    assert rep.notes == ["20 file(s) differ in bytes from the public copy in JingyunLiang/SwinIR@6545850fbf8d "
                         "(their image sizes match; other encoders store the same pixels differently)"]


def test_benchmark_names_of_another_copy_only_explain_a_short_folder(tmp_path):
    """Set5's names come from a public copy: a full folder named otherwise is complete,
    a short one is told which of those names it lacks."""
    folder = find_dataset("benchmark").folders[0]
    assert folder.path == "Set5/HR"
    for i in range(5):
        save(tmp_path / f"img{i}.png", 8, 8, i)
    files = sorted(tmp_path.iterdir())
    assert describe_missing(folder, files) == ""
    assert describe_missing(folder, files[:4]) == ("found 4 of 5 images (missing: baby.png, bird.png, "
                                                   "butterfly.png, head.png, woman.png)")
    real = find_dataset("DIV2K-valid").folders[0]  # DIV2K's numbers are the set's own
    for i in range(100):
        (tmp_path / "d").mkdir(exist_ok=True)
        (tmp_path / "d" / f"{i:04d}.png").touch()
    assert describe_missing(real, sorted((tmp_path / "d").iterdir())).startswith(
        "found 100 of 100 images (missing: 0801.png, 0802.png, 0803.png, 0804.png, 0805.png and 95 more)")


def test_verify_the_shared_benchmark_copy(shared, tmp_path):
    """The shared Set5 is the copy the hashes were measured on: all 20 files match."""
    root = shared("datasets")
    rep = verify(find_dataset("benchmark"), root, progress=False)
    assert rep.notes == [] and rep.hashed >= 20
    assert not any(p.startswith("Set5/") for p in rep.problems)


def test_prepare_div2k_valid_keeps_official_lr_and_makes_gtmod12(tmp_path, capsys):
    div2k_valid(tmp_path)
    official = (tmp_path / "DIV2K-valid/LR_bicubic/X2/0801x2.png").read_bytes()
    assert main(["data", "prepare", "DIV2K-valid", "--root", str(tmp_path), "--quiet"]) == 0
    assert (tmp_path / "DIV2K-valid/LR_bicubic/X2/0801x2.png").read_bytes() == official
    gt = Image.open(tmp_path / "DIV2K-valid/GTmod12/0801.png")
    assert gt.size == (24, 24)
    assert np.array_equal(np.asarray(gt), np.asarray(Image.open(tmp_path / "DIV2K-valid/HR/0801.png"))[:24, :24])
    manifest = json.loads((tmp_path / "DIV2K-valid/MANIFEST.json").read_text())
    assert manifest["dataset"] == "DIV2K-valid" and len(manifest["files"]) == 500
    assert manifest["folders"]["GTmod12"].startswith("HR cropped at the top-left to a multiple of 12")
    assert "manifest:" in capsys.readouterr().out
    # the manifest is checked by verify: a changed file is found
    save(tmp_path / "DIV2K-valid/GTmod12/0802.png", 24, 24, 99)
    rep = verify(find_dataset("DIV2K-valid"), tmp_path, progress=False)
    assert rep.problems == ["DIV2K-valid/GTmod12/0802.png: SHA-256 differs from MANIFEST.json"]


def test_prepare_makes_matlab_lr_where_missing(tmp_path):
    div2k_valid(tmp_path, lr=False)
    assert main(["data", "prepare", "DIV2K-valid", "--root", str(tmp_path), "--quiet", "--scales", "3"]) == 0
    hr = load_rgb(tmp_path / "DIV2K-valid/HR/0830.png")
    lr = load_rgb(tmp_path / "DIV2K-valid/LR_bicubic/X3/0830x3.png")
    assert torch.equal(lr, matlab_downscale(modcrop(hr, 3), 3))
    assert not (tmp_path / "DIV2K-valid/LR_bicubic/X2").exists()


def test_prepare_manga109_from_the_users_folder(tmp_path, capsys):
    titles = manga109_titles()
    assert len(titles) == 109 and "UchiNoNyan'sDiary" in titles
    src = tmp_path / "mine"
    for n, t in enumerate(titles[3:]):
        name = "UchiNoNyansDiary.jpg" if t == "UchiNoNyan'sDiary" else f"{t}.png"
        save(src / name, 26, 25, n, fmt="JPEG" if name.endswith(".jpg") else None)
    root = tmp_path / "data"
    assert main(["data", "prepare", "Manga109", "--root", str(root), "--from", str(src), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {src}: 106 of the 109 Manga109 images found; missing: {', '.join(titles[:3])} "
                   "(one image per title, named after it)\n")
    assert not root.exists()
    for n, t in enumerate(titles[:3]):
        save(src / f"{t.upper()}.png", 26, 25, 200 + n)
    assert main(["data", "prepare", "manga109", "--root", str(root), "--from", str(src), "--quiet"]) == 0
    hr = root / "Manga109/HR"
    assert len(list(hr.iterdir())) == 109 and (hr / "UchiNoNyan'sDiary.png").is_file()
    assert (hr / f"{titles[5]}.png").read_bytes() == (src / f"{titles[5]}.png").read_bytes()  # PNG copied as is
    for s in (2, 3, 4):
        assert len(list((root / f"Manga109/LR_bicubic/X{s}").iterdir())) == 109
    assert Image.open(root / "Manga109/GTmod12/ARMS.png").size == (24, 24)
    assert verify(find_dataset("Manga109"), root, progress=False).ok
    capsys.readouterr()
    # Nothing to prepare from: one line saying how to get it
    assert main(["data", "prepare", "Manga109", "--root", str(tmp_path / "empty"), "--quiet"]) == 2
    assert "give your copy with `ciaosr data prepare Manga109 --from DIR`" in capsys.readouterr().err


def test_prepare_on_a_folder_missing_images_names_them(tmp_path, capsys):
    div2k_valid(tmp_path, lr=False)
    for i in (803, 804, 810, 811, 812, 890):
        (tmp_path / f"DIV2K-valid/HR/{i:04d}.png").unlink()
    assert main(["data", "prepare", "DIV2K-valid", "--root", str(tmp_path), "--quiet"]) == 2
    assert capsys.readouterr().err == (f"error: {tmp_path}/DIV2K-valid/HR: found 94 of 100 images (missing: 0803.png, "
                                       "0804.png, 0810.png, 0811.png, 0812.png and 1 more)\n")
    assert not (tmp_path / "DIV2K-valid/LR_bicubic").exists()


def test_prepare_before_fetch_and_wrong_options_are_one_line(tmp_path, capsys):
    assert main(["data", "prepare", "benchmark", "--root", str(tmp_path)]) == 2
    assert "no images (run `ciaosr data fetch benchmark` first)" in capsys.readouterr().err
    assert main(["data", "prepare", "DIV2K-valid", "--root", str(tmp_path), "--sub-images"]) == 2
    assert "--sub-images is for the training sets" in capsys.readouterr().err
    assert main(["data", "prepare", "DIV2K-valid", "--root", str(tmp_path), "--from", str(tmp_path)]) == 2
    assert "--from is for Manga109 only" in capsys.readouterr().err


def test_prepare_hr_folder_equals_prepare_benchmark_its_alias(shared, tmp_path, capsys):
    """``data prepare --hr DIR``: the exact LR of the pack, under --out; ``prepare-benchmark``
    does the same and says in one line that it is the alias."""
    src = shared("datasets/Set5")
    assert main(["data", "prepare", "--hr", str(src / "HR"), "--out", str(tmp_path / "a"), "--scales", "2", "4",
                 "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("wrote 10 LR image(s) in ") and err == ""
    assert main(["prepare-benchmark", "--hr", str(src / "HR"), "--out", str(tmp_path / "b"), "--scales", "2", "4"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("wrote 10 LR image(s) in ") and err.count("\n") == 1 and "alias of" in err
    for s in (2, 4):
        for f in sorted((src / f"LR_bicubic/X{s}").iterdir()):
            mine, alias = (load_rgb(tmp_path / d / f"LR_bicubic/X{s}" / f.name) for d in ("a", "b"))
            assert torch.equal(mine, load_rgb(f)) and torch.equal(mine, alias)


def test_prepare_name_or_hr_wrong_combinations_are_one_line(tmp_path, capsys):
    hr = tmp_path / "HR"
    save(hr / "a.png", 8, 8, 0)
    for argv, says in ((["--root", str(tmp_path)], "give a set NAME (ciaosr data list) or --hr DIR"),
                       (["Set5", "--hr", str(hr)], "give a set NAME or --hr DIR, not both"),
                       (["--hr", str(hr), "--from", str(tmp_path)], "--from is for a set NAME, not --hr"),
                       (["--hr", str(hr), "--sub-images"], "--sub-images is for a set NAME, not --hr"),
                       (["Set5", "--out", str(tmp_path)], "--out goes with --hr"),
                       (["--hr", str(tmp_path / "missing")], "HR folder not found")):
        assert main(["data", "prepare", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and says in err and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["HR"]


def test_sub_images_cover_the_image_flush_with_its_borders(tmp_path):
    hr = tmp_path / "HR"
    save(hr / "0001.png", 100, 70, 1)
    assert make_sub_images(hr, tmp_path / "HR_sub48", 48, 24, overwrite=False, progress=False) == 8
    img = np.asarray(Image.open(hr / "0001.png"))
    subs = sorted((tmp_path / "HR_sub48").iterdir())
    assert [p.name for p in subs][:2] == ["0001_s001.png", "0001_s002.png"]
    corners = [(y, x) for y in (0, 22) for x in (0, 24, 48, 52)]
    for p, (y, x) in zip(subs, corners):
        assert np.array_equal(np.asarray(Image.open(p)), img[y:y + 48, x:x + 48])
    assert make_sub_images(hr, tmp_path / "HR_sub48", 48, 24, overwrite=False, progress=False) == 0


def test_prepared_images_are_written_exactly_by_the_package_writer(tmp_path):
    """``write_tensor_png``, the writer of prepared sets and of ``ciaosr eval`` outputs:
    every uint8 value comes back as written; floats are clamped and rounded as eval
    scores them; an existing file is replaced, unless overwrite=False."""
    u8 = torch.arange(256, dtype=torch.uint8).repeat(3, 5, 1)
    u8[1] = u8[1].flip(-1)
    path = tmp_path / "a.png"
    path.write_bytes(b"old")
    write_tensor_png(path, u8)
    assert torch.equal(load_rgb(path), u8)
    f = torch.rand(3, 9, 11, generator=torch.Generator().manual_seed(0)) * 1.4 - 0.2
    write_tensor_png(path, f)
    assert torch.equal(load_rgb(path), (f.clamp(0, 1) * 255.0).round().to(torch.uint8))
    with pytest.raises(CiaosrError, match="already exists"):
        write_tensor_png(path, u8, overwrite=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_list(tmp_path, capsys):
    div2k_valid(tmp_path)
    assert main(["data", "list", "--root", str(tmp_path), "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["datasets"]}
    assert set(rows) == {"DIV2K-train", "DIV2K-valid", "Flickr2K", "benchmark", "Manga109", "RealSRSet"}
    assert rows["DIV2K-valid"]["complete_under_root"] and not rows["benchmark"]["complete_under_root"]
    assert rows["Manga109"]["source"] is None
    assert main(["data", "list", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"data root: {tmp_path}\n") and "DIV2K-valid     400  complete  Table 1" in out
    assert f"\n  from {rows['DIV2K-valid']['source']} (DIV2K_valid_HR.zip, " in out
    assert "\n  not downloadable: prepared from your copy with ciaosr data prepare Manga109 --from DIR.\n" in out
    assert "from not downloadable" not in out

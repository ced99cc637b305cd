"""``ciaosr degrade``: output sizes and names, seeds, and one-line errors for bad input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ciaosr.cli.main import main


def _run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _one_line_error(rc, err, words):
    assert rc == 2, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert words in lines[0], err
    assert "Traceback" not in err


@pytest.fixture
def photos(tmp_path):
    """A folder with a 64x48 RGB PNG, a 40x40 grey JPEG and a text file."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8), "L").save(folder / "b.jpg", quality=95)
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_one_file_to_a_file_name(photos, tmp_path, capsys):
    dst = tmp_path / "new" / "deep" / "lr.png"  # missing folders are made
    rc, out, _ = _run(capsys, "degrade", photos / "a.png", "-o", dst, "--scale", "4", "--seed", "3")
    assert rc == 0 and "64x48 -> 16x12" in out
    assert Image.open(dst).size == (16, 12) and Image.open(dst).mode == "RGB"


@pytest.mark.parametrize("pipeline", ["realesrgan", "bsrgan"])
def test_folder_sizes_names_and_seeds(photos, tmp_path, capsys, pipeline):
    out_dir = tmp_path / "out"
    rc, out, _ = _run(capsys, "degrade", photos, "-o", out_dir, "--scale", "2x3", "--pipeline", pipeline,
                      "--count", "2", "--verbose")
    assert rc == 0
    names = sorted(p.name for p in out_dir.iterdir())
    assert names == [f"{s}_{pipeline}_x2x3_{k}.png" for s in ("a", "b") for k in (1, 2)]
    # --scale 2x3 is width / 2, height / 3.
    assert Image.open(out_dir / f"a_{pipeline}_x2x3_1.png").size == (32, 16)
    assert Image.open(out_dir / f"b_{pipeline}_x2x3_2.png").size == (20, 13)
    assert "jpeg" in out and "stage final" in out  # --verbose lists the steps drawn
    first = {n: (out_dir / n).read_bytes() for n in names}
    assert first[names[0]] != first[names[1]]  # two variants differ
    # The same command again writes the same files; another seed other ones.
    rc, _, _ = _run(capsys, "degrade", photos, "-o", out_dir, "--scale", "2x3", "--pipeline", pipeline,
                    "--count", "2", "--overwrite")
    assert rc == 0 and all((out_dir / n).read_bytes() == first[n] for n in names)
    rc, _, _ = _run(capsys, "degrade", photos, "-o", out_dir, "--scale", "2x3", "--pipeline", pipeline,
                    "--count", "2", "--overwrite", "--seed", "1")
    assert rc == 0 and all((out_dir / n).read_bytes() != first[n] for n in names)


def test_output_does_not_depend_on_the_other_inputs(photos, tmp_path, capsys):
    rc, _, _ = _run(capsys, "degrade", photos, "-o", tmp_path / "all", "--scale", "3")
    assert rc == 0
    rc, _, _ = _run(capsys, "degrade", photos / "a.png", "-o", tmp_path / "one", "--scale", "3")
    assert rc == 0
    name = "a_realesrgan_x3.png"
    assert (tmp_path / "all" / name).read_bytes() == (tmp_path / "one" / name).read_bytes()


def test_sharpen_and_config(photos, tmp_path, capsys):
    cfg = tmp_path / "deg.yaml"
    cfg.write_text("second_blur_prob: 0.0\nkernel_prob: {iso: 1.0}\n")
    rc, out, _ = _run(capsys, "degrade", photos / "a.png", "-o", tmp_path / "s", "--scale", "2", "--sharpen",
                      "--config", cfg, "-v")
    assert rc == 0 and "kernel iso" in out and "stage 2, kernel" not in out


def test_bad_input_is_one_line(photos, tmp_path, capsys):
    good = photos / "a.png"
    out_dir = tmp_path / "o"
    cases = [
        (["degrade", tmp_path / "missing.png", "-o", out_dir, "--scale", "2"], "no such file"),
        (["degrade", photos / "notes.txt", "-o", out_dir, "--scale", "2"], "not an image"),
        (["degrade", good, "-o", out_dir, "--scale", "abc"], "not a number"),
        (["degrade", good, "-o", out_dir, "--scale", "0.5"], "at least 1"),
        (["degrade", good, "-o", out_dir, "--scale", "2", "--count", "0"], "--count"),
        (["degrade", good, "-o", out_dir, "--scale", "2", "--pipeline", "esrgan"], "invalid choice"),
        (["degrade", good, "-o", tmp_path / "x.png", "--scale", "2", "--count", "2"], "need a folder"),
        (["degrade", photos, "-o", photos, "--scale", "2"], "another folder"),
        (["degrade", tmp_path, "-o", out_dir, "--scale", "2"], "no images"),
        (["degrade", good, "-o", out_dir, "--scale", "2", "--device", "tpu"], "unknown device"),
    ]
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "c.png").write_bytes(b"not a PNG")
    cases += [
        (["degrade", good, "-o", good / "o", "--scale", "2"], "cannot create output folder"),  # below a file
        (["degrade", broken, "-o", out_dir / "deep", "--scale", "2"], "c.png"),  # fails once the folder is made
    ]
    for argv, words in cases:
        rc, _, err = _run(capsys, *argv)
        _one_line_error(rc, err, words)
    bad_cfg = tmp_path / "bad.yaml"
    bad_cfg.write_text("noise_rnage: [1, 2]\n")
    rc, _, err = _run(capsys, "degrade", good, "-o", out_dir, "--scale", "2", "--config", bad_cfg)
    _one_line_error(rc, err, "'noise_rnage'")
    bad_cfg.write_text("kernel_prob: {iso: [\n")
    rc, _, err = _run(capsys, "degrade", good, "-o", out_dir, "--scale", "2", "--config", bad_cfg)
    _one_line_error(rc, err, "not valid YAML")
    assert not out_dir.exists()  # nor any folder a failed run made


def test_existing_output_is_kept_unless_overwrite(photos, tmp_path, capsys):
    dst = tmp_path / "lr.png"
    dst.write_bytes(b"precious")
    rc, _, err = _run(capsys, "degrade", photos / "a.png", "-o", dst, "--scale", "2")
    _one_line_error(rc, err, "already exists")
    assert dst.read_bytes() == b"precious"
    rc, _, _ = _run(capsys, "degrade", photos / "a.png", "-o", dst, "--scale", "2", "--overwrite")
    assert rc == 0 and Image.open(dst).size == (32, 24)

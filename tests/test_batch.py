"""``ciaosr upscale`` on folders and batches: recursion, resuming, naming, collisions,
formats and bit depths, the standard streams, and what is reported."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ciaosr.cli.main import main
from ciaosr.imageio import decode_png16, encode_png16


def picture(path: Path, h: int = 10, w: int = 12, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def upscale(model: str, *argv: str) -> int:
    return main(["upscale", *argv, "--model", model])


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def tree(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` (relative name -> content), temporary files included."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def photos(tmp_path):
    """in/a.png, in/sub/b.png, in/sub/deeper/c.jpg"""
    src = tmp_path / "in"
    picture(src / "a.png", seed=1)
    picture(src / "sub" / "b.png", 8, 9, seed=2)
    picture(src / "sub" / "deeper" / "c.jpg", 6, 7, seed=3)
    return src


# --------------------------------------------------------------------------------------
# folders: recursion, resuming, never reading our own outputs
# --------------------------------------------------------------------------------------
def test_recursive_mirrors_the_tree_and_formats_follow_the_inputs(photos, tiny_model_file, tmp_path):
    out = tmp_path / "out"
    assert upscale(tiny_model_file, str(photos), "--scale", "2", "-o", str(out), "--recursive") == 0
    assert sorted(tree(out)) == ["a_x2.png", "sub/b_x2.png", "sub/deeper/c_x2.jpg"]
    with Image.open(out / "sub" / "deeper" / "c_x2.jpg") as im:
        assert im.format == "JPEG" and im.size == (14, 12)


def test_subfolders_without_recursive_are_reported(photos, tiny_model_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert upscale(tiny_model_file, str(photos), "--scale", "2", "-o", str(out)) == 0
    assert sorted(tree(out)) == ["a_x2.png"]
    text = capsys.readouterr().out
    assert f"{photos / 'sub'}: a subfolder (use --recursive" in text
    assert "done: 1 written, 1 skipped, 0 failed" in text


def test_a_stopped_run_resumes_with_skip_existing(photos, tiny_model_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert upscale(tiny_model_file, str(photos), "--scale", "2", "-o", str(out), "-r") == 0
    first = tree(out)
    (out / "sub" / "b_x2.png").unlink()  # as if the run had stopped before b
    capsys.readouterr()
    # Without --skip-existing the existing outputs are failures, kept as they are.
    assert upscale(tiny_model_file, str(photos), "--scale", "2", "-o", str(out), "-r") == 1
    err = capsys.readouterr().err
    assert "2 of 3 image(s) failed" in err and "--skip-existing" in err
    assert tree(out) == first  # b was written by this run; a and c untouched
    (out / "sub" / "b_x2.png").unlink()
    assert upscale(tiny_model_file, str(photos), "--scale", "2", "-o", str(out), "-r", "--skip-existing") == 0
    assert tree(out) == first
    text = capsys.readouterr().out
    assert "done: 1 written, 2 skipped, 0 failed" in text
    assert f"{photos / 'a.png'}: its output {out / 'a_x2.png'} exists (--skip-existing)" in text
    # Everything done: a rerun writes nothing and exits 0.
    assert upscale(tiny_model_file, str(photos), "--scale", "2", "-o", str(out), "-r", "--skip-existing") == 0
    assert tree(out) == first and "done: 0 written, 3 skipped" in capsys.readouterr().out


def test_rerun_in_place_does_not_upscale_its_own_outputs(photos, tiny_model_file, capsys):
    assert upscale(tiny_model_file, str(photos), "--scale", "2", "-r") == 0
    after = tree(photos)
    assert sorted(after) == ["a.png", "a_x2.png", "sub/b.png", "sub/b_x2.png", "sub/deeper/c.jpg",
                             "sub/deeper/c_x2.jpg"]
    capsys.readouterr()
    assert upscale(tiny_model_file, str(photos), "--scale", "2", "-r", "--skip-existing") == 0
    assert tree(photos) == after  # no a_x2_x2.png
    text = capsys.readouterr().out
    assert f"{photos / 'a_x2.png'}: named like an output of this run (*_x2.*)" in text


def test_a_size_that_keeps_the_aspect_names_each_output_by_its_own_size(photos, tiny_model_file, tmp_path, capsys):
    """--size 24x: a (12 x 10) becomes a_24x20, b (9 x 8) b_24x21, c (7 x 6) c_24x21, not
    *_24x; a rerun does not read them back. Both sides given, or --suffix: as before."""
    assert upscale(tiny_model_file, str(photos), "--size", "24x", "-r") == 0
    outputs = {"a_24x20.png": (24, 20), "sub/b_24x21.png": (24, 21), "sub/deeper/c_24x21.jpg": (24, 21)}
    assert sorted(tree(photos)) == sorted(["a.png", "sub/b.png", "sub/deeper/c.jpg", *outputs])
    for name, size in outputs.items():
        with Image.open(photos / name) as im:
            assert im.size == size
    capsys.readouterr()
    assert upscale(tiny_model_file, str(photos), "--size", "24x", "-r", "--skip-existing") == 0
    assert len(tree(photos)) == 6
    assert f"{photos / 'a_24x20.png'}: named like an output of this run (*_24x<H>.*)" in capsys.readouterr().out

    a = str(photos / "a.png")
    for size, name in (("x20", "a_24x20.png"), ("30x20", "a_30x20.png")):
        assert upscale(tiny_model_file, a, "--size", size, "-o", f"{tmp_path / size}/") == 0
        assert sorted(tree(tmp_path / size)) == [name]
    assert upscale(tiny_model_file, a, "--size", "24x", "--suffix", "_big", "-o", f"{tmp_path / 'big'}/") == 0
    assert sorted(tree(tmp_path / "big")) == ["a_big.png"]


def test_output_folder_inside_the_input_tree_is_not_read(photos, tiny_model_file):
    out = photos / "big"
    for _ in range(2):
        assert upscale(tiny_model_file, str(photos), "--scale", "2", "-o", str(out), "-r", "--skip-existing",
                       "--suffix", "") == 0
    assert sorted(tree(out)) == ["a.png", "sub/b.png", "sub/deeper/c.jpg"]  # no big/big/...


def test_same_stem_in_one_folder_gets_the_source_extension(tmp_path, tiny_model_file):
    src = tmp_path / "in"
    picture(src / "photo.jpg", seed=1)
    picture(src / "photo.png", seed=2)
    assert upscale(tiny_model_file, str(src), "--scale", "2", "-o", str(tmp_path / "keep")) == 0
    assert sorted(tree(tmp_path / "keep")) == ["photo_x2.jpg", "photo_x2.png"]  # no collision
    assert upscale(tiny_model_file, str(src), "--scale", "2", "-o", str(tmp_path / "png"), "--ext", "png") == 0
    assert sorted(tree(tmp_path / "png")) == ["photo_jpg_x2.png", "photo_png_x2.png"]


def test_outputs_that_still_collide_are_refused_with_the_reason(tmp_path, tiny_model_file, capsys):
    one, two = picture(tmp_path / "one" / "a.png", seed=1), picture(tmp_path / "two" / "a.png", seed=2)
    out = tmp_path / "out"
    assert upscale(tiny_model_file, str(one), str(two), "--scale", "2", "-o", str(out)) == 1
    assert sorted(tree(out)) == ["a_x2.png"]
    with Image.open(out / "a_x2.png") as im, Image.open(one) as first:
        assert im.size == (24, 20) and first.size == (12, 10)
    err = capsys.readouterr().err
    assert f"{two}: its output {out / 'a_x2.png'} is also the output of {one}" in err


def test_an_output_never_replaces_an_input(tmp_path, tiny_model_file, capsys):
    src = picture(tmp_path / "a.png")
    before = src.read_bytes()
    assert upscale(tiny_model_file, str(src), "--scale", "2", "--suffix", "", "--overwrite") == 2
    assert "would replace an input" in one_line(capsys)
    assert src.read_bytes() == before and sorted(tree(tmp_path)) == ["a.png"]


def test_output_file_name_with_a_folder_input_is_refused(photos, tiny_model_file, tmp_path, capsys):
    before = tree(tmp_path)
    assert upscale(tiny_model_file, str(photos), "--scale", "2", "-o", str(tmp_path / "x.png")) == 2
    assert "need an output folder, not a file name" in one_line(capsys)
    assert tree(tmp_path) == before and not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("argv,needle", [
    (["--ext", "gif"], "unknown output format"),
    (["--ext", "jpg", "-o", "{dir}/x.png"], "different formats"),
    (["--quality", "0"], "--quality"),
    (["--png-level", "10"], "--png-level"),
    (["--threads", "0"], "--threads"),
    (["--suffix", "a/b"], "path separator"),
    (["--overwrite", "--skip-existing"], "not both"),
    (["{dir}/b.png", "-o", "-"], "stdout"),
])
def test_bad_batch_options(tmp_path, tiny_model_file, capsys, argv, needle):
    picture(tmp_path / "a.png")
    picture(tmp_path / "b.png", seed=1)
    before = tree(tmp_path)
    argv = [a.replace("{dir}", str(tmp_path)) for a in argv]
    assert upscale(tiny_model_file, str(tmp_path / "a.png"), *argv, "--scale", "2") == 2
    assert needle in one_line(capsys)
    assert tree(tmp_path) == before


def test_interrupted_run_exits_130_and_leaves_complete_files(photos, tiny_model_file, tmp_path, capsys,
                                                              monkeypatch):
    import ciaosr.inference.upscale as api

    real, calls = api.upscale_data, []

    def stop_on_the_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "upscale_data", stop_on_the_second)
    out = tmp_path / "out"
    assert upscale(tiny_model_file, str(photos), "--scale", "2", "-o", str(out), "-r") == 130
    assert sorted(tree(out)) == ["a_x2.png"]  # complete, and no temporary file
    with Image.open(out / "a_x2.png") as im:
        im.load()
    err = capsys.readouterr().err.strip().splitlines()
    assert "rerun with --skip-existing" in err[0] and err[-1] == "error: interrupted"


# --------------------------------------------------------------------------------------
# formats, quality, bit depth
# --------------------------------------------------------------------------------------
def test_quality_reaches_jpeg(tmp_path, tiny_model_file):
    src = picture(tmp_path / "a.jpg", 32, 32)
    sizes = []
    for q in ("20", "95"):
        out = tmp_path / f"q{q}.jpg"
        assert upscale(tiny_model_file, str(src), "--scale", "2", "--quality", q, "-o", str(out)) == 0
        sizes.append(out.stat().st_size)
    assert sizes[0] < sizes[1]


@pytest.mark.parametrize("bits", ["8", "16"])
def test_png_level_reaches_png_and_keeps_the_pixels(tmp_path, tiny_model_file, bits):
    src = picture(tmp_path / "a.png", 48, 48)
    sizes, pixels = [], []
    for level in ("0", "9"):
        out = tmp_path / f"l{level}.png"
        assert upscale(tiny_model_file, str(src), "--scale", "2", "--png-level", level, "--bit-depth", bits,
                       "-o", str(out)) == 0
        sizes.append(out.stat().st_size)
        with Image.open(out) as im:
            pixels.append(np.asarray(im))
    assert sizes[0] > sizes[1]  # level 0 stores, level 9 compresses
    assert np.array_equal(pixels[0], pixels[1])


def test_bit_depth_follows_the_input(tmp_path, tiny_model_file, capsys):
    arr = np.random.default_rng(5).integers(0, 65536, (10, 12, 3), dtype=np.uint16)
    src = tmp_path / "deep.png"
    src.write_bytes(encode_png16(arr))
    assert upscale(tiny_model_file, str(src), "--scale", "2") == 0  # no --bit-depth
    res = decode_png16((tmp_path / "deep_x2.png").read_bytes())
    assert res is not None and res.shape == (20, 24, 3) and (res % 257 != 0).any()
    assert ", 16-bit," in capsys.readouterr().out
    assert upscale(tiny_model_file, str(src), "--scale", "2", "--bit-depth", "8", "-o", str(tmp_path / "8.png")) == 0
    assert decode_png16((tmp_path / "8.png").read_bytes()) is None  # an 8-bit PNG
    assert upscale(tiny_model_file, str(src), "--scale", "2", "-o", str(tmp_path / "j.jpg")) == 0
    assert "8-bit (JPEG holds no more)" in capsys.readouterr().out


def test_sixteen_bits_asked_for_outputs_that_cannot_hold_them(photos, tiny_model_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert upscale(tiny_model_file, str(photos), "--scale", "2", "-o", str(out), "-r", "--bit-depth", "16") == 2
    assert "add --ext png" in one_line(capsys)
    assert not out.exists() or tree(out) == {}


# --------------------------------------------------------------------------------------
# stdin and stdout
# --------------------------------------------------------------------------------------
class _Stdin(io.TextIOWrapper):
    def isatty(self) -> bool:
        return False


def test_stdin_to_stdout(tmp_path, tiny_model_file, monkeypatch, capsysbinary):
    blob = picture(tmp_path / "a.png").read_bytes()
    monkeypatch.setattr(sys, "stdin", _Stdin(io.BytesIO(blob)))
    assert upscale(tiny_model_file, "-", "--scale", "2", "-o", "-", "--ext", "jpg") == 0
    cap = capsysbinary.readouterr()
    with Image.open(io.BytesIO(cap.out)) as im:
        assert im.format == "JPEG" and im.size == (24, 20)
    assert b"stdin: 12x10 -> 24x20" in cap.err  # the report goes to stderr
    assert sorted(tree(tmp_path)) == ["a.png"]


def test_stdin_errors_are_one_line(tmp_path, tiny_model_file, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", _Stdin(io.BytesIO(b"not an image")))
    assert upscale(tiny_model_file, "-", "--scale", "2", "-o", str(tmp_path / "x.png")) == 2
    assert "<stdin>: not an image" in one_line(capsys)
    assert upscale(tiny_model_file, "-", "--scale", "2") == 2
    assert "needs -o FILE" in one_line(capsys)
    assert sorted(tree(tmp_path)) == []

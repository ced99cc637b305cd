"""The command line's own surface: argument forms (--scale 4x, --size 1920x), --threads,
--version, help texts, exit codes, one-line refusals, and the README's test command."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ciaosr
from ciaosr import runtime
from ciaosr.cli.main import build_parser, main
from ciaosr.cli.upscale import DEFAULT_THREADS
from ciaosr.errors import CiaosrError
from ciaosr.geometry import Resize


def one_line(capsys, code: int, expected: int = 2) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert code == expected
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert "Traceback" not in err[0]
    return err[0]


@pytest.fixture
def img(tmp_path) -> Path:
    path = tmp_path / "a.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(path)
    return path


# --------------------------------------------------------------------------------------
# argument forms
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,expected", [
    ("4", Resize.of(4)), ("4x", Resize.of(4)), ("x4", Resize.of(4)), ("4X", Resize.of(4)), ("2x", Resize.of(2)),
    (" 3.7x ", Resize.of(3.7)), ("2x3.5", Resize.of((2, 3.5))), ("x2x3.5", Resize.of((2, 3.5))),
    ("2\u00d73.5", Resize.of((2, 3.5))),
])
def test_scale_forms(text, expected):
    assert Resize.parse(text) == expected


@pytest.mark.parametrize("text", ["x", "", "4xx", "xx4", "x4x", "four", "4x4x", "2x3x4"])
def test_scale_forms_that_are_refused(text):
    with pytest.raises(CiaosrError, match="is not a number"):
        Resize.parse(text)


def test_size_keeping_the_aspect_ratio():
    # The other side is round(other * new / this).
    assert Resize.parse(size="1920x").output_size((600, 1000)) == (1152, 1920)  # 600 * 1920 / 1000
    assert Resize.parse(size="x1080").output_size((1000, 1500)) == (1080, 1620)
    assert Resize.parse(size="x5").output_size((2, 5)) == (5, 12)  # 12.5 -> 12: halves to even
    assert Resize.parse(size="7x").output_size((1, 1000)) == (1, 7)  # at least 1 pixel
    assert Resize.of(size=(1920, None)) == Resize.parse(size="1920x")
    assert (Resize.parse(size="1920x").label, Resize.parse(size="x1080").label) == ("1920x", "x1080")
    assert Resize.parse(size="1920x").description == "width 1920, aspect kept"
    for bad in ("x", "0x", "x0", "-5x", "1.5x"):
        with pytest.raises(CiaosrError, match="WIDTHxHEIGHT"):
            Resize.parse(size=bad)
    with pytest.raises(CiaosrError, match="width or a height"):
        Resize.of(size=(None, None))


def test_scale_and_size_forms_through_the_command(img, tiny_model_file, capsys):
    assert main(["upscale", str(img), "--scale", "2x", "--model", tiny_model_file]) == 0
    assert main(["upscale", str(img), "--size", "x25", "--model", tiny_model_file]) == 0
    with Image.open(img.parent / "a_x2.png") as a, Image.open(img.parent / "a_30x25.png") as b:
        assert a.size == (24, 20) and b.size == (30, 25)  # 12 * 25 / 10 = 30
    assert "(height 25, aspect kept)" in capsys.readouterr().out


# --------------------------------------------------------------------------------------
# --threads, --version, help, exit codes
# --------------------------------------------------------------------------------------
def test_threads_are_set_before_the_work(img, tiny_model_file, monkeypatch):
    import ciaosr.inference.upscale as api

    seen = []
    real = api.upscale_data

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "upscale_data", spy)
    torch.set_num_threads(2)
    assert main(["upscale", str(img), "--scale", "2", "--threads", "2", "--model", tiny_model_file]) == 0
    torch.set_num_threads(2)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    monkeypatch.setattr(runtime, "_INITIAL_THREADS", 4)
    monkeypatch.setattr(runtime, "others_busy", lambda *a: 2.6)  # other jobs keep about 3 of 4 cores busy
    assert main(["upscale", str(img), "--scale", "3", "--model", tiny_model_file]) == 0
    assert DEFAULT_THREADS == "auto" and seen == [2, 1]  # the cores other work leaves free


def test_eval_threads(tmp_path, capsys):
    torch.set_num_threads(2)
    code = main(["eval", "--model", "bicubic", "--data-root", str(tmp_path / "none"), "--threads", "1"])
    assert "data root not found" in one_line(capsys, code)  # stops after the threads are set
    assert torch.get_num_threads() == 1
    code = main(["eval", "--model", "bicubic", "--data-root", str(tmp_path), "--threads", "0"])
    assert "--threads" in one_line(capsys, code)


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip().startswith(f"ciaosr {ciaosr.__version__} (torch ")


def test_every_sub_command_describes_itself_and_upscale_states_its_exit_codes(capsys):
    parser = build_parser()
    subs = next(a for a in parser._actions if a.dest == "command").choices  # argparse's one public map
    assert {"upscale", "models", "eval", "prepare-benchmark"} <= set(subs)
    for name, sub in subs.items():
        assert sub.description and len(sub.description) > 20, name
    assert main(["upscale", "--help"]) == 0
    text = capsys.readouterr().out
    for line in ("0    every image written", "1    some images failed", "2    usage error", "130  interrupted"):
        assert line in text


def test_refused_arguments_are_one_line(capsys):
    assert "--bit-depth" in one_line(capsys, main(["upscale", "x.png", "--bit-depth", "12"]))
    assert "invalid choice" in one_line(capsys, main(["no-such-command"]))

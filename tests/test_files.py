"""``ciaosr.imageio.files`` (which files are images) and ``ciaosr.atomic`` (how files are written,
and the one rule for the commands' output folders)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ciaosr.atomic import (AlreadyExists, check_output_folder, default_file_mode, make_output_folders,
                           output_folders, publish, publish_all, staging_folder, write_atomic)
from ciaosr.errors import CiaosrError
from ciaosr.imageio import IMAGE_EXTENSIONS, list_images


def test_list_images_takes_every_image_extension_and_nothing_else(tmp_path):
    for ext in IMAGE_EXTENSIONS:
        (tmp_path / f"a{ext.upper()}").write_bytes(b"")
    for name in ("notes.txt", "._a.png", ".hidden.png", "b.png.tmp"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.png").mkdir()
    found = list_images(tmp_path)
    assert found == sorted(tmp_path / f"a{ext.upper()}" for ext in IMAGE_EXTENSIONS)


def test_list_images_refuses_what_is_not_a_folder(tmp_path):
    with pytest.raises(CiaosrError, match="not a folder"):
        list_images(tmp_path / "missing")


def test_write_atomic_never_clobbers_without_overwrite(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"precious")
    with pytest.raises(CiaosrError, match="already exists"):
        write_atomic(path, lambda tmp: open(tmp, "wb").write(b"new"))
    assert path.read_bytes() == b"precious"
    write_atomic(path, lambda tmp: open(tmp, "wb").write(b"new"), overwrite=True)
    assert path.read_bytes() == b"new"
    assert os.stat(path).st_mode & 0o777 == default_file_mode()
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]  # no temporary file left


def test_write_atomic_failures_are_one_line_errors(tmp_path):
    with pytest.raises(CiaosrError, match="does not exist"):
        write_atomic(tmp_path / "no" / "f.bin", lambda tmp: None)

    def fails(tmp):
        raise OSError(28, "No space left on device")

    with pytest.raises(CiaosrError, match="cannot write"):
        write_atomic(tmp_path / "f.bin", fails)
    assert list(tmp_path.iterdir()) == []


def test_write_atomic_makes_the_missing_folders_and_removes_them_if_it_fails(tmp_path):
    path = write_atomic(tmp_path / "a" / "b" / "f.bin", lambda tmp: open(tmp, "wb").write(b"x"), make_parents=True)
    assert path.read_bytes() == b"x"

    def fails(tmp):
        raise OSError(28, "No space left on device")

    with pytest.raises(CiaosrError, match="No space left"):
        write_atomic(tmp_path / "c" / "d" / "f.bin", fails, make_parents=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]  # c/d made, then removed


def test_an_output_folder_that_cannot_be_made_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    (tmp_path / "file").write_bytes(b"")
    for check in (check_output_folder, lambda f: make_output_folders([f])):
        with pytest.raises(CiaosrError, match=r"file/x/y: cannot create output folder \(.*file is not a folder\)"):
            check(tmp_path / "file" / "x" / "y")
    with pytest.raises(CiaosrError, match="file: is not a folder"):
        check_output_folder(tmp_path / "file")
    real = Path.mkdir

    def refused(self, *args, **kwargs):  # root may create anywhere: refuse the third level
        if self.name == "c":
            raise PermissionError(13, "Permission denied")
        real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refused)
    with pytest.raises(CiaosrError, match=r"a/b/c: cannot create output folder \(Permission denied\)"):
        make_output_folders([tmp_path / "ok", tmp_path / "a" / "b" / "c"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # ok, a and a/b made, then removed
    check_output_folder(tmp_path / "new" / "deep")  # creatable: checked, not made
    assert not (tmp_path / "new").exists()


def test_a_failing_block_removes_the_output_folders_it_made(tmp_path):
    (tmp_path / "kept").mkdir()
    with pytest.raises(RuntimeError):
        with output_folders(tmp_path / "kept" / "new" / "sub") as (folder,):
            assert folder.is_dir()
            raise RuntimeError
    assert list((tmp_path / "kept").iterdir()) == []  # the folder that was there stays
    with output_folders(tmp_path / "x") as (folder,):
        (folder / "f").write_bytes(b"")
    assert (tmp_path / "x" / "f").exists()


def test_publish_a_folder_never_replaces_one(tmp_path):
    with staging_folder(tmp_path, ".entry.") as staging:
        (staging / "f").write_bytes(b"1")
        publish(staging, tmp_path / "entry")
    assert [p.name for p in tmp_path.iterdir()] == ["entry"]  # no staging folder left
    assert (tmp_path / "entry" / "f").read_bytes() == b"1"
    (tmp_path / "plain").mkdir()
    assert os.stat(tmp_path / "entry").st_mode & 0o777 == os.stat(tmp_path / "plain").st_mode & 0o777  # not 0o700
    with staging_folder(tmp_path) as staging:
        with pytest.raises(AlreadyExists, match="entry: already exists"):
            publish(staging, tmp_path / "entry", overwrite=True)
    assert (tmp_path / "entry" / "f").read_bytes() == b"1"


def test_publish_all_is_all_or_none(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "b").write_bytes(b"theirs")
    with staging_folder(out) as staging:
        for name in ("a", "b", "c"):
            (staging / name).write_bytes(b"ours")
        with pytest.raises(AlreadyExists, match="b: already exists"):
            publish_all(staging, out)
        assert sorted(p.name for p in out.iterdir()) == sorted(["b", staging.name])  # nothing moved
        assert [p.name for p in publish_all(staging, out, overwrite=True)] == ["a", "b", "c"]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == {"a": b"ours", "b": b"ours", "c": b"ours"}


def test_commands_write_into_missing_folders_and_an_uncreatable_one_is_one_line(tiny_model_file, tmp_path, capsys):
    """The one rule for every command's output: missing folders are made, as upscale
    always did; a folder that cannot be made is one line, exit 2, before any work, and
    nothing is left. (export, compare, degrade, cmsr-table and eval --json test the
    missing folder in their own files.)"""
    import numpy as np
    from PIL import Image

    from ciaosr.cli.main import main

    img = tmp_path / "a.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(img)
    out = tmp_path / "new" / "deep" / "a.png"
    assert main(["upscale", str(img), "--scale", "2", "--model", tiny_model_file, "-o", str(out)]) == 0
    assert out.is_file()
    capsys.readouterr()
    before = sorted(tmp_path.rglob("*"))
    for argv in (["upscale", str(img), "--scale", "2", "--model", tiny_model_file, "-o", str(img / "sub" / "b.png")],
                 ["eval", "--model", "bicubic", "--data-root", str(tmp_path), "--json", str(img / "sub" / "r.json")],
                 ["train", "--config", str(Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml"),
                  "--set", f"output_dir={img / 'runs'}"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and "cannot create output folder" in err[0], err
    assert sorted(tmp_path.rglob("*")) == before

"""``ciaosr.imageio.files`` (which files are images) and ``ciaosr.atomic`` (how files are written)."""

from __future__ import annotations

import os

import pytest

from ciaosr.atomic import default_file_mode, write_atomic
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

"""``ciaosr upscale`` and ``ciaosr.upscale``: sizes, formats, errors, API kinds."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

import ciaosr
from ciaosr.cli.main import main
from ciaosr.imageio import decode_png16, encode_png16, encode_tiff16, read_image
from ciaosr.geometry import Resize

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    torch.manual_seed(0)
    model = ciaosr.build_model("edsr-baseline-ciaosr", {"num_blocks": 1, "mid_channels": 8}, {"hidden": [16]})
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    ciaosr.save_checkpoint(model, path)
    return str(path)


@pytest.fixture(scope="module")
def tiny(tiny_path):
    return ciaosr.load_model(tiny_path)


def rgb_array(h=10, w=12, c=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)


@pytest.fixture
def img(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(rgb_array()).save(path)
    return path


def run(argv, tiny_path=None):
    if tiny_path is not None:
        argv = [*argv, "--model", tiny_path]
    return main(["upscale", *argv])


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


# --------------------------------------------------------------------------------------
# sizes
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("args,size", [
    (["--scale", "3.7"], (44, 37)),  # round(12 * 3.7), round(10 * 3.7)
    (["--scale", "2x3.5"], (24, 35)),  # width x2, height x3.5
    (["--size", "31x17"], (31, 17)),
    (["--scale", "0.5"], (6, 5)),
])
def test_exact_output_sizes(img, tiny_path, args, size):
    out = img.parent / "out.png"
    assert run([str(img), *args, "-o", str(out)], tiny_path) == 0
    with Image.open(out) as im:
        assert im.size == size and im.mode == "RGB"


def test_output_size_rule():
    """Sizes and scales are typed (width, height); inside, everything is (height, width)."""
    assert Resize.of(3.7).output_size((10, 12)) == (37, 44)
    assert Resize.of((2, 3.5)).output_size((10, 12)) == (35, 24)
    assert Resize.of(2.5).output_size((3, 5)) == (8, 12)  # Python's round: halves to even
    assert Resize.of(size=(7, 9)).output_size((10, 12)) == (9, 7)
    assert Resize.parse("2x3.5") == Resize.of((2, 3.5)) and Resize.parse(size="7x9") == Resize.of(size=(7, 9))
    assert (Resize.parse("2x3.5").label, Resize.parse("2x3.5").description) == ("x2x3.5", "x2 wide, x3.5 high")
    assert Resize.of(3.7).label == "x3.7" and Resize.of(size=(7, 9)).label == "7x9"


def test_default_output_name_next_to_input(img, tiny_path, capsys):
    assert run([str(img), "--scale", "3.7"], tiny_path) == 0
    out = img.parent / "a_x3.7.png"
    assert out.is_file()
    line = capsys.readouterr().out.strip()
    assert "12x10 -> 44x37" in line and str(out) in line


# --------------------------------------------------------------------------------------
# bad input: one line, exit status 2, nothing written
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("args,needle", [
    (["--scale", "0"], "positive"),
    (["--scale", "-1.5"], "positive"),
    (["--scale", "nan"], "positive"),
    (["--scale", "inf"], "positive"),
    (["--scale", "2xinf"], "positive"),
    (["--scale", "two"], "not a number"),
    (["--scale", "2", "--size", "20x20"], "not both"),
    ([], "--scale"),
    (["--size", "0x20"], "at least 1x1"),
    (["--size", "20x-3"], "at least 1x1"),
    (["--size", "20"], "WIDTHxHEIGHT"),
    (["--scale", "0.01"], "less than 1 pixel"),
    (["--scale", "100", "--max-pixels", "10000"], "over the limit"),
    (["--precision", "fp16", "--scale", "2"], "fp16"),
    (["--scale", "2", "--bit-depth", "16", "-o", "{dir}/x.jpg"], "16-bit"),
    (["--scale", "2", "-o", "{dir}/x.gif"], "unknown output format"),
    (["--scale", "2", "--tile", "2"], "--tile"),
])
def test_bad_arguments(img, tiny_path, capsys, args, needle):
    before = set(img.parent.iterdir())
    args = [a.replace("{dir}", str(img.parent)) for a in args]
    assert run([str(img), *args], tiny_path) == 2
    assert needle in one_error_line(capsys)
    assert set(img.parent.iterdir()) == before


def test_default_pixel_limit_is_documented_and_enforced(img, tiny_path, capsys):
    # 12 x 10 x 2000^2 = 480 M pixels > 2**28.
    assert run([str(img), "--scale", "2000"], tiny_path) == 2
    assert str(f"{2 ** 28:,}") in one_error_line(capsys)


@pytest.mark.parametrize("kind,needle", [
    ("missing", "no such file"),
    ("text", "not an image"),
    ("truncated", "truncated"),
    ("empty", "not an image"),
])
def test_bad_image_files(tmp_path, tiny_path, capsys, kind, needle):
    path = tmp_path / "bad.png"
    if kind == "text":
        path.write_text("this is not a picture\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        buf = io.BytesIO()
        Image.fromarray(rgb_array(40, 40)).save(buf, "PNG")
        path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    assert run([str(path), "--scale", "2"], tiny_path) == 2
    assert needle in one_error_line(capsys)
    assert not (tmp_path / "bad_x2.png").exists()


def test_truncated_jpeg_is_refused(tmp_path, tiny_path, capsys):
    buf = io.BytesIO()
    Image.fromarray(rgb_array(64, 64)).save(buf, "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buf.getvalue()[:600])
    assert run([str(path), "--scale", "2"], tiny_path) == 2
    assert "truncated" in one_error_line(capsys)


def test_existing_output_is_never_overwritten(img, tiny_path, capsys):
    out = img.parent / "out.png"
    out.write_bytes(b"precious")
    assert run([str(img), "--scale", "2", "-o", str(out)], tiny_path) == 2
    assert "already exists" in one_error_line(capsys)
    assert out.read_bytes() == b"precious"
    assert [p.name for p in img.parent.iterdir() if p.name.startswith(".")] == []  # no temp files left
    assert run([str(img), "--scale", "2", "-o", str(out), "--overwrite"], tiny_path) == 0
    with Image.open(out) as im:
        assert im.size == (24, 20)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_folder(img, tiny_path, capsys, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert run([str(img), "--scale", "2", "-o", str(ro / "x.png")], tiny_path) == 2
        assert "not writable" in one_error_line(capsys)
    finally:
        ro.chmod(0o755)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_output_folder_that_cannot_take_files(img, tiny_path, capsys):
    # /proc refuses new files even for root.
    assert run([str(img), "--scale", "2", "-o", "/proc/ciaosr-out.png"], tiny_path) == 2
    assert "not writable" in one_error_line(capsys)


# --------------------------------------------------------------------------------------
# folders
# --------------------------------------------------------------------------------------
def test_folder_continues_past_a_bad_file(tmp_path, tiny_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(rgb_array(seed=1)).save(src / "a.png")
    (src / "b.png").write_text("not an image")
    Image.fromarray(rgb_array(8, 9, seed=2)).save(src / "c.jpg")
    (src / "notes.txt").write_text("ignored: not an image extension")
    out = tmp_path / "out"
    assert run([str(src), "--scale", "2", "-o", str(out)], tiny_path) == 1
    assert sorted(p.name for p in out.iterdir()) == ["a_x2.png", "c_x2.jpg"]  # the input's format
    with Image.open(out / "c_x2.jpg") as im:
        assert im.size == (18, 16)
    cap = capsys.readouterr()
    assert "1 of 3" in cap.err and "b.png" in cap.err
    assert cap.out.count("->") >= 2  # a summary line per good image


def test_several_files_into_a_folder(tmp_path, tiny_path):
    a, b = tmp_path / "a.png", tmp_path / "b.bmp"
    Image.fromarray(rgb_array(seed=3)).save(a)
    Image.fromarray(rgb_array(seed=4)).save(b)
    assert run([str(a), str(b), "--size", "20x30", "-o", str(tmp_path / "o")], tiny_path) == 0
    for name in ("a_20x30.png", "b_20x30.bmp"):  # each in its input's format
        with Image.open(tmp_path / "o" / name) as im:
            assert im.size == (20, 30)


# --------------------------------------------------------------------------------------
# image kinds through the command
# --------------------------------------------------------------------------------------
def test_grey_stays_grey(tmp_path, tiny_path):
    src = tmp_path / "g.png"
    Image.fromarray(rgb_array()[..., 0]).save(src)
    out = tmp_path / "g2.png"
    assert run([str(src), "--scale", "2", "-o", str(out)], tiny_path) == 0
    with Image.open(out) as im:
        assert im.mode == "L" and im.size == (24, 20)


def test_rgba_keeps_its_alpha(tmp_path, tiny_path):
    arr = rgb_array(c=4)
    arr[..., 3] = 0
    arr[:, 6:, 3] = 255  # left half transparent, right half opaque
    src = tmp_path / "t.png"
    Image.fromarray(arr).save(src)
    out = tmp_path / "t2.png"
    assert run([str(src), "--scale", "3", "-o", str(out)], tiny_path) == 0
    with Image.open(out) as im:
        assert im.mode == "RGBA" and im.size == (36, 30)
        alpha = np.asarray(im)[..., 3]
    assert (alpha[:, :14] == 0).all() and (alpha[:, 22:] == 255).all()


def test_sixteen_bit_round_trip(tmp_path, tiny_path):
    rng = np.random.default_rng(5)
    arr = rng.integers(0, 65536, (10, 12, 3), dtype=np.uint16)
    src = tmp_path / "deep.png"
    src.write_bytes(encode_png16(arr))
    data = read_image(src)
    assert data.bit_depth == 16 and np.array_equal(np.rint(data.pixels * 65535).astype(np.uint16), arr)
    out = tmp_path / "deep2.png"
    assert run([str(src), "--scale", "2", "--bit-depth", "16", "-o", str(out)], tiny_path) == 0
    res = decode_png16(out.read_bytes())
    assert res.dtype == np.uint16 and res.shape == (20, 24, 3)
    assert (res % 257 != 0).any()  # real 16-bit values, not 8-bit ones stretched
    # 16-bit grey in, 16-bit grey out (Pillow's I;16).
    grey = tmp_path / "g16.png"
    Image.fromarray(arr[..., 0]).save(grey)
    out_g = tmp_path / "g16_2.tif"
    assert run([str(grey), "--scale", "2", "--bit-depth", "16", "-o", str(out_g)], tiny_path) == 0
    with Image.open(out_g) as im:
        assert im.mode == "I;16" and im.size == (24, 20)


def test_sixteen_bit_rgba_tiff_round_trip(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    arr = np.random.default_rng(6).integers(0, 65536, (7, 5, 4), dtype=np.uint16)
    path = tmp_path / "x.tif"
    path.write_bytes(encode_tiff16(arr))
    assert np.array_equal(tifffile.imread(path), arr)
    data = read_image(path)
    back = np.concatenate([data.pixels, data.alpha[..., None]], -1)
    assert np.array_equal(np.rint(back * 65535).astype(np.uint16), arr)


def _png16_with_filters(arr: np.ndarray, filters) -> bytes:
    """A 16-bit PNG whose rows use the given filter types (forward filters written
    here independently of the decoder under test)."""
    h, w, c = arr.shape
    bpp = 2 * c
    raw = arr.astype(">u2").view(np.uint8).reshape(h, w * bpp).astype(np.int64)
    out = []
    for y in range(h):
        x = raw[y]
        prior = raw[y - 1] if y else np.zeros_like(x)
        left = np.concatenate([np.zeros(bpp, np.int64), x[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int64), prior[:-bpp]])
        ft = filters[y % len(filters)]
        if ft == 0:
            pred = np.zeros_like(x)
        elif ft == 1:
            pred = left
        elif ft == 2:
            pred = prior
        elif ft == 3:
            pred = (left + prior) // 2
        else:
            p = left + prior - upleft
            pa, pb, pc = np.abs(p - left), np.abs(p - prior), np.abs(p - upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prior, upleft))
        out.append(bytes([ft]) + ((x - pred) % 256).astype(np.uint8).tobytes())

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    colour = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"".join(out))) + chunk(b"IEND", b""))


@pytest.mark.parametrize("c", [2, 3, 4])
def test_png16_decoder_handles_every_filter(c):
    arr = np.random.default_rng(c).integers(0, 65536, (10, 7, c), dtype=np.uint16)
    assert np.array_equal(decode_png16(_png16_with_filters(arr, [0, 1, 2, 3, 4])), arr)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied(tmp_path, orientation):
    arr = rgb_array(6, 9)
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = orientation
    path = tmp_path / "o.jpg"
    im.save(path, exif=exif, quality=100)
    data = read_image(path)
    with Image.open(path) as ref:
        upright = np.asarray(ImageOps.exif_transpose(ref))
    assert data.pixels.shape[:2] == upright.shape[:2]
    assert np.abs(np.rint(data.pixels * 255) - upright).max() == 0


# --------------------------------------------------------------------------------------
# the Python API: same kind out as in
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "I;16", "P"])
def test_api_pil(tiny, mode):
    base = Image.fromarray(rgb_array(c=4))
    if mode == "I;16":
        im = Image.fromarray(rgb_array()[..., 0].astype(np.uint16) * 250)
    else:
        im = base.convert(mode)
    out = ciaosr.upscale(im, scale=(2, 1.5), model=tiny)
    assert isinstance(out, Image.Image)
    assert out.size == (24, 15)
    assert out.mode == {"P": "RGB"}.get(mode, mode)


@pytest.mark.parametrize("shape,dtype", [((10, 12), np.uint8), ((10, 12, 3), np.uint16), ((10, 12, 4), np.float32),
                                         ((10, 12, 1), np.float64)])
def test_api_numpy(tiny, shape, dtype):
    rng = np.random.default_rng(0)
    if np.issubdtype(dtype, np.integer):
        arr = rng.integers(0, np.iinfo(dtype).max, shape).astype(dtype)
    else:
        arr = rng.random(shape).astype(dtype)
    out = ciaosr.upscale(arr, size=(17, 23), model=tiny)
    assert isinstance(out, np.ndarray) and out.dtype == dtype
    assert out.shape == (23, 17, *shape[2:])
    if not np.issubdtype(dtype, np.integer):
        assert out.min() >= 0 and out.max() <= 1


def test_api_tensor(tiny):
    x = torch.rand(2, 3, 10, 12)
    out = ciaosr.upscale(x, scale=2.5, model=tiny)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 3, 25, 30) and out.dtype == torch.float32
    single = ciaosr.upscale(x[1], scale=2.5, model=tiny)
    assert single.shape == (3, 25, 30)
    assert torch.allclose(single, out[1], atol=1e-5)
    rgba = ciaosr.upscale(torch.rand(4, 10, 12), size=(5, 7), model=tiny)
    assert rgba.shape == (4, 7, 5)


def test_api_matches_the_command(img, tiny, tiny_path):
    out = img.parent / "cli.png"
    assert run([str(img), "--scale", "3.7", "-o", str(out)], tiny_path) == 0
    api = ciaosr.upscale(np.asarray(Image.open(img)), scale=3.7, model=tiny)
    with Image.open(out) as im:
        assert np.array_equal(np.asarray(im), api)


def test_api_errors(tiny):
    arr = rgb_array()
    with pytest.raises(ciaosr.CiaosrError, match="exactly one"):
        ciaosr.upscale(arr, scale=2, size=(4, 4), model=tiny)
    with pytest.raises(ciaosr.CiaosrError, match="positive"):
        ciaosr.upscale(arr, scale=float("nan"), model=tiny)
    with pytest.raises(ciaosr.CiaosrError, match="fp16"):
        ciaosr.upscale(arr, scale=2, model=tiny, precision="fp16")
    with pytest.raises(ciaosr.CiaosrError, match="dtype"):
        ciaosr.upscale(arr.astype(np.int32), scale=2, model=tiny)


def test_bf16_autocast_runs_close_to_fp32(tiny):
    x = torch.rand(1, 3, 10, 12)
    a = ciaosr.upscale(x, scale=2, model=tiny)
    b = ciaosr.upscale(x, scale=2, model=tiny, precision="bf16")
    assert b.dtype == torch.float32 and (a - b).abs().mean() < 0.05


# --------------------------------------------------------------------------------------
# the shipped default model, end to end, on the shipped sample
# --------------------------------------------------------------------------------------
def test_sample_with_default_model(tmp_path):
    sample = REPO / "samples" / "landscape.png"
    out = tmp_path / "out.png"
    assert main(["upscale", str(sample), "--size", "160x120", "-o", str(out)]) == 0
    with Image.open(sample) as lr_im, Image.open(out) as sr_im:
        assert sr_im.size == (160, 120)
        lr = np.asarray(lr_im, dtype=np.float64)
        back = np.asarray(sr_im.resize(lr_im.size, Image.Resampling.BICUBIC), dtype=np.float64)
    # Downscaled again, a faithful x1.25 output gives back the input closely.
    psnr = 10 * np.log10(255 ** 2 / np.mean((lr - back) ** 2))
    assert psnr > 30, psnr

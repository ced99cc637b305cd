"""Issue 11, the imaging half: shrinking axes (antialiased, never aliased), metadata
carried from input to output, the API's orientation and device, multi-frame files."""

from __future__ import annotations

import inspect
import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms

import ciaosr
from ciaosr.imageio import IMAGE_EXTENSIONS, decode_png16, encode_png16, list_images, read_image
from ciaosr.inference.tiling import tiled_upsample
from test_upscale import one_error_line, rgb_array, run, tiny, tiny_path  # noqa: F401  (fixtures)

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
MAKE, ORIENTATION, EXIF_IFD, PIXEL_X, PIXEL_Y, DATE = 0x010F, 0x0112, 0x8769, 0xA002, 0xA003, 0x9003


def psnr(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(10 * np.log10(255 ** 2 / np.mean((a - b) ** 2)))


def zone_plate(n: int = 96) -> np.ndarray:
    """A grey (R = G = B) zone plate whose local frequency reaches 0.5 cycle/pixel at the
    edges: every downscale has content above its new Nyquist limit to alias."""
    y, x = np.mgrid[:n, :n] - n / 2 + 0.5
    z = np.rint(127.5 + 127.5 * np.cos(np.pi * (x ** 2 + y ** 2) / n)).astype(np.uint8)
    return np.repeat(z[..., None], 3, axis=-1)


def bicubic(arr: np.ndarray, size_wh) -> np.ndarray:
    """The reference resize: PIL's antialiased bicubic."""
    return np.asarray(Image.fromarray(arr).resize(size_wh, Image.Resampling.BICUBIC))


def spread(arr: np.ndarray) -> int:
    """Largest difference between the channels of one pixel."""
    return int((arr.max(-1).astype(int) - arr.min(-1)).max())


# --------------------------------------------------------------------------------------
# 1. axes that shrink
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("args,size", [(["--scale", "0.4"], (38, 38)), (["--size", "50x30"], (50, 30))])
def test_downscaled_grey_zone_plate_stays_grey_and_unaliased(tmp_path, args, size):
    src, out = tmp_path / "zp.png", tmp_path / "small.png"
    Image.fromarray(zone_plate()).save(src)
    assert run([str(src), *args, "-o", str(out)]) == 0  # the shipped default model
    with Image.open(out) as im:
        res = np.asarray(im)
    assert res.shape == (size[1], size[0], 3)
    assert spread(res) <= 1
    assert psnr(res, bicubic(zone_plate(), size)) > 45  # the antialiased resize, not an aliased one


def test_half_scale_of_a_photo_is_the_antialiased_bicubic(shared):
    with Image.open(shared("datasets/Set14/HR/baboon.png")) as im:
        photo = im.convert("RGB")
    out = ciaosr.upscale(photo, scale=0.5)
    ref = photo.resize(out.size, Image.Resampling.BICUBIC)
    assert out.size == (round(photo.width / 2), round(photo.height / 2))
    assert psnr(out, ref) > 45


def test_same_size_is_the_input_unchanged(tiny):
    arr = rgb_array(9, 11)
    assert np.array_equal(ciaosr.upscale(arr, scale=1, model=tiny), arr)


def test_mixed_directions_grow_with_the_model_and_shrink_antialiased(shared):
    """x2 wide, x0.5 high: the right shape, the model's width (close to, but not, plain
    bicubic), and no aliasing along the height."""
    with Image.open(shared("datasets/Set14/HR/baboon.png")) as im:
        crop = np.asarray(im.convert("RGB"))[100:164, 100:148]  # 64 high, 48 wide
    out = ciaosr.upscale(crop, scale=(2, 0.5))
    assert out.shape == (32, 96, 3)
    assert 28 < psnr(out, bicubic(crop, (96, 32))) < 60

    # Stripes of 0.4 cycle per pixel down 80 rows: above the Nyquist limit of 40 rows,
    # they would alias to 0.2 cycle per output row (amplitude 75 of 127.5 before this
    # rule); antialiased, what is left there is as small as plain bicubic leaves.
    rows = np.arange(80)[:, None, None]
    stripes = np.rint(127.5 + 127.5 * np.cos(2 * np.pi * 0.4 * rows) * np.ones((1, 48, 3))).astype(np.uint8)
    res = ciaosr.upscale(stripes, scale=(2, 0.5))
    assert res.shape == (40, 96, 3)

    def amplitude_at_alias(img: np.ndarray) -> float:
        profile = img[:, 8:-8].astype(np.float64).mean(axis=(1, 2))
        return float(np.abs(np.fft.rfft(profile - profile.mean()))[8] * 2 / len(profile))  # 8 / 40 rows

    assert amplitude_at_alias(res) < 10
    assert amplitude_at_alias(res) < 2 * amplitude_at_alias(bicubic(stripes, (96, 40))) + 1
    assert spread(ciaosr.upscale(zone_plate(64), scale=(2, 0.5))) == 0  # grey stays grey through the model


def test_the_model_grows_first_then_shrinking_axes_are_resized(tiny, monkeypatch):
    from ciaosr.inference import upscale as inference

    x, cpu = torch.rand(1, 3, 12, 10), torch.device("cpu")
    out = inference.upscale_tensor(x, (6, 25), tiny, device=cpu)  # 0.5 high, 2.5 wide
    with torch.no_grad():
        ref = inference.resize_bicubic(tiled_upsample(tiny, x, (12, 25)), (6, 25))
    assert out.shape == (1, 3, 6, 25) and torch.allclose(out, ref, atol=1e-5)
    # When the grown image (12 x 25) would be over the limit and larger than the output,
    # the shrinking axis is resized first instead.
    monkeypatch.setattr(inference, "MAX_GROWN_PIXELS", 200)
    out = inference.upscale_tensor(x, (6, 25), tiny, device=cpu)
    with torch.no_grad():
        ref = tiled_upsample(tiny, inference.resize_bicubic(x, (6, 10)), (6, 25))
    assert torch.allclose(out, ref, atol=1e-5)


def test_grey_stored_as_rgb_stays_grey_through_the_model(tiny):
    grey = np.repeat(rgb_array(10, 12)[..., :1], 3, axis=-1)
    out = ciaosr.upscale(grey, scale=(2.5, 1.5), model=tiny)
    assert out.shape == (15, 30, 3) and spread(out) == 0
    assert spread(ciaosr.upscale(rgb_array(10, 12), scale=2.5, model=tiny)) > 0  # colour stays colour


def test_shrinking_alpha_is_antialiased_like_colour(tiny):
    """Colour and alpha are resized apart (not premultiplied, as PIL resizes RGBA)."""
    arr = rgb_array(20, 24, c=4, seed=3)
    out = ciaosr.upscale(arr, scale=0.5, model=tiny).astype(int)
    assert out.shape == (10, 12, 4)
    assert np.abs(out[..., :3] - bicubic(arr[..., :3], (12, 10))).max() <= 1
    assert np.abs(out[..., 3] - bicubic(arr[..., 3], (12, 10))).max() <= 1


# --------------------------------------------------------------------------------------
# 2. metadata
# --------------------------------------------------------------------------------------
def tagged_jpeg(path, orientation: int = 6, icc: bytes = SRGB) -> None:
    """A 12 x 8 JPEG, stored sideways (EXIF orientation 6), with an ICC profile, EXIF
    (camera make, date, pixel dimensions) and 300 dpi across by 150 down as stored."""
    im = Image.fromarray(rgb_array(8, 12))
    exif = im.getexif()
    exif[ORIENTATION], exif[MAKE] = orientation, "Ciao Camera"
    sub = exif.get_ifd(EXIF_IFD)
    sub[DATE], sub[PIXEL_X], sub[PIXEL_Y] = "2026:11:29 12:00:00", 12, 8
    im.save(path, exif=exif.tobytes(), icc_profile=icc, dpi=(300, 150), quality=95)


def check_meta(path, size, exif=True, icc=True, dpi=True) -> None:
    with Image.open(path) as im:
        assert im.size == size
        assert im.info.get("icc_profile") == (SRGB if icc else None)
        if dpi:  # turned upright, so across and down swap; PNG and BMP store whole pixels per metre
            assert np.allclose(im.info["dpi"], (150, 300), atol=0.02), im.info.get("dpi")
        else:
            assert "dpi" not in im.info
        tags = im.getexif()
        if not exif:
            assert MAKE not in tags
            return
        assert tags[ORIENTATION] == 1 and tags[MAKE] == "Ciao Camera"
        sub = tags.get_ifd(EXIF_IFD)
        assert sub[DATE] == "2026:11:29 12:00:00" and (sub[PIXEL_X], sub[PIXEL_Y]) == size


@pytest.mark.parametrize("ext,bits,kept", [
    ("png", 8, "icc exif dpi"), ("jpg", 8, "icc exif dpi"), ("webp", 8, "icc exif"), ("tif", 8, "icc exif dpi"),
    ("bmp", 8, "dpi"), ("png", 16, "icc exif dpi"), ("tif", 16, "icc dpi")])
def test_metadata_is_carried_to_every_format(tmp_path, tiny_path, ext, bits, kept):
    src, out = tmp_path / "in.jpg", tmp_path / f"out.{ext}"
    tagged_jpeg(src)
    assert run([str(src), "--scale", "2", "--bit-depth", str(bits), "-o", str(out)], tiny_path) == 0
    # Stored 12 x 8 sideways: upright it is 8 x 12, so x2 is 16 x 24.
    check_meta(out, (16, 24), exif="exif" in kept, icc="icc" in kept, dpi="dpi" in kept)
    if (ext, bits) == ("png", 16):
        assert decode_png16(out.read_bytes()).shape == (24, 16, 3)  # libpng reads it too


def test_metadata_survives_a_second_pass(tmp_path, tiny_path):
    """PNG and TIFF outputs read back with their metadata: upscaling an output again keeps it."""
    src = tmp_path / "in.jpg"
    tagged_jpeg(src)
    for first, bits in (("a.png", 16), ("b.tif", 8), ("c.png", 8)):
        assert run([str(src), "--scale", "2", "--bit-depth", str(bits), "-o", str(tmp_path / first)], tiny_path) == 0
        assert run([str(tmp_path / first), "--size", "20x30", "-o", str(tmp_path / f"{first}.jpg")], tiny_path) == 0
        check_meta(tmp_path / f"{first}.jpg", (20, 30))


def test_a_tiffs_layout_tags_are_not_taken_for_exif(tmp_path, tiny_path):
    src, out = tmp_path / "in.tif", tmp_path / "out.jpg"
    im = Image.fromarray(rgb_array(8, 12))
    exif = im.getexif()
    exif[MAKE] = "Ciao Camera"
    im.save(src, exif=exif.tobytes(), compression="tiff_lzw")
    assert run([str(src), "--scale", "2", "-o", str(out)], tiny_path) == 0
    with Image.open(out) as res:
        tags = dict(res.getexif())
    assert tags[MAKE] == "Ciao Camera"
    assert not {256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 317} & set(tags)  # no strips, sizes, codec


@pytest.mark.parametrize("mode,space,kept", [("L", b"GRAY", True), ("L", b"RGB ", False),
                                              ("RGB", b"RGB ", True), ("CMYK", b"CMYK", False)])
def test_an_icc_profile_is_kept_only_for_its_colour_space(tmp_path, mode, space, kept):
    profile = SRGB[:16] + space + SRGB[20:]  # only the header's colour space is looked at
    path = tmp_path / "p.jpg"
    Image.new(mode, (4, 3)).save(path, icc_profile=profile)
    assert (read_image(path).meta.icc_profile == profile) is kept


def test_malformed_exif_is_dropped_not_fatal(tmp_path, tiny_path):
    src, out = tmp_path / "bad_exif.jpg", tmp_path / "out.jpg"
    buf = io.BytesIO()
    Image.fromarray(rgb_array(8, 12)).save(buf, "JPEG")
    junk = b"Exif\0\0MM\0*\0\0\0\x08\xff\xff" + bytes(range(40))  # an IFD claiming 65535 entries
    app1 = b"\xff\xe1" + (len(junk) + 2).to_bytes(2, "big") + junk
    src.write_bytes(buf.getvalue()[:2] + app1 + buf.getvalue()[2:])
    assert read_image(src).meta.exif is None
    assert run([str(src), "--scale", "2", "-o", str(out)], tiny_path) == 0
    with Image.open(out) as im:
        assert im.size == (24, 16)


def test_exif_too_large_for_jpeg_is_left_out_of_jpeg_only(tmp_path, tiny_path):
    src = tmp_path / "big_exif.png"
    im = Image.fromarray(rgb_array(8, 12))
    exif = im.getexif()
    exif[MAKE], exif[0x010E] = "Ciao Camera", "x" * 70000  # a 70 kB description
    im.save(src, exif=exif.tobytes(), icc_profile=SRGB)
    for out in (tmp_path / "out.jpg", tmp_path / "out.png"):
        assert run([str(src), "--scale", "2", "-o", str(out)], tiny_path) == 0
        with Image.open(out) as res:
            assert res.info["icc_profile"] == SRGB
            assert (res.getexif().get(MAKE) == "Ciao Camera") is (out.suffix == ".png")


def test_png16_metadata_chunks_come_before_the_pixels():
    blob = encode_png16(np.zeros((2, 3, 3), np.uint16), icc_profile=SRGB, exif=b"Exif\0\0MM\0*\0\0\0\x08\0\0",
                        dpi=(72, 72))
    kinds, i = [], 8
    while i < len(blob):
        n = int.from_bytes(blob[i:i + 4], "big")
        kinds.append(blob[i + 4:i + 8])
        i += 12 + n
    assert kinds == [b"IHDR", b"iCCP", b"pHYs", b"eXIf", b"IDAT", b"IEND"]


# --------------------------------------------------------------------------------------
# 3. the Python API agrees with the command
# --------------------------------------------------------------------------------------
def test_api_turns_pil_images_upright_and_keeps_their_metadata(tmp_path, tiny, tiny_path):
    src, out = tmp_path / "in.jpg", tmp_path / "cli.png"
    tagged_jpeg(src)
    with Image.open(src) as im:
        assert im.size == (12, 8)  # stored sideways
        api = ciaosr.upscale(im, scale=2, model=tiny)
    assert api.size == (16, 24) and api.mode == "RGB"
    assert api.info["icc_profile"] == SRGB and api.info["dpi"] == (150, 300)
    assert api.getexif()[ORIENTATION] == 1 and api.getexif()[MAKE] == "Ciao Camera"
    assert run([str(src), "--scale", "2", "-o", str(out)], tiny_path) == 0
    with Image.open(out) as cli:
        assert np.array_equal(np.asarray(cli), np.asarray(api))
    saved = tmp_path / "saved.png"
    api.save(saved, **api.info)  # the metadata travels on with Pillow's own save
    check_meta(saved, (16, 24))


def test_arrays_and_tensors_are_taken_as_stored(tiny):
    arr = rgb_array(8, 12)
    assert ciaosr.upscale(arr, scale=2, model=tiny).shape == (16, 24, 3)
    assert ciaosr.upscale(torch.from_numpy(arr).permute(2, 0, 1), scale=2, model=tiny).shape == (3, 16, 24)


def test_api_device_defaults_to_auto_like_the_command():
    from ciaosr.cli.main import build_parser

    assert inspect.signature(ciaosr.upscale).parameters["device"].default == "auto"
    assert build_parser().parse_args(["upscale", "x.png", "--scale", "2"]).device == "auto"


# --------------------------------------------------------------------------------------
# 4. several frames: refused, never cut to the first
# --------------------------------------------------------------------------------------
def frames(n: int) -> list[Image.Image]:
    return [Image.fromarray(rgb_array(8, 10, seed=i)) for i in range(n)]


@pytest.mark.parametrize("name,options", [
    ("anim.gif", {"format": "GIF"}), ("pages.tif", {"format": "TIFF"}), ("anim.png", {"format": "PNG"}),
    ("anim.webp", {"format": "WEBP", "lossless": True})])
def test_several_frames_are_refused_in_one_line(tmp_path, tiny_path, capsys, name, options):
    src = tmp_path / name
    first, *rest = frames(3)
    first.save(src, save_all=True, append_images=rest, **options)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert run([str(src), "--scale", "2"], tiny_path) == 2
    assert "has 3 frames" in one_error_line(capsys)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing lost, nothing written


def test_a_folder_reports_an_animation_and_goes_on(tmp_path, tiny_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    first, *rest = frames(2)
    first.save(src / "anim.gif", save_all=True, append_images=rest)
    Image.fromarray(rgb_array(8, 10)).convert("P").save(src / "still.gif")
    assert run([str(src), "--scale", "2", "-o", str(tmp_path / "out")], tiny_path) == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["still_x2.png"]
    assert "anim.gif: has 2 frames" in capsys.readouterr().err


def test_single_frame_gif_is_an_image(tmp_path):
    assert ".gif" in IMAGE_EXTENSIONS
    path = tmp_path / "still.gif"
    Image.fromarray(rgb_array(8, 10)).convert("P").save(path)
    assert list_images(tmp_path) == [path]
    assert read_image(path).pixels.shape == (8, 10, 3)


def test_a_multi_picture_jpeg_is_read_as_its_picture(tmp_path):
    """Cameras store previews after the picture (MPO); the picture is the first image."""
    path = tmp_path / "camera.jpg"
    first, second = Image.new("RGB", (10, 8), (200, 40, 30)), Image.new("RGB", (10, 8), (20, 60, 220))
    first.save(path, format="MPO", save_all=True, append_images=[second], quality=100)
    with Image.open(path) as im:
        assert im.format == "MPO" and im.n_frames == 2
    data = read_image(path)
    assert np.abs(data.pixels * 255 - np.array([200, 40, 30])).max() < 3


def test_a_pixel_limit_refuses_images_from_their_header_before_decoding(tmp_path, monkeypatch):
    from ciaosr.imageio import encode_tiff16

    png = tmp_path / "wide.png"
    Image.new("RGB", (40, 30)).save(png)
    assert read_image(png, max_pixels=1200).size == (40, 30)
    with pytest.raises(ciaosr.CiaosrError) as info:
        read_image(png, max_pixels=1199, name="upload.png")
    assert str(info.value) == "upload.png: image of 40x30 has 1,200 pixels, over the limit of 1,199"
    # 16-bit grey + alpha TIFF: Pillow cannot open it, tifffile reads it; the limit holds there too.
    tif = tmp_path / "la16.tif"
    tif.write_bytes(encode_tiff16(np.full((30, 40, 2), 30000, np.uint16)))
    assert read_image(tif).size == (40, 30)
    with pytest.raises(Exception):
        Image.open(tif)  # so the path under test is tifffile's
    decoded = []
    import tifffile

    real = tifffile.TiffPage.asarray
    monkeypatch.setattr(tifffile.TiffPage, "asarray", lambda self, *a, **k: decoded.append(1) or real(self, *a, **k))
    with pytest.raises(ciaosr.CiaosrError, match=r"la16.tif: image of 40x30 has 1,200 pixels, over the limit of 100$"):
        read_image(tif, max_pixels=100)
    assert decoded == []  # refused before decoding
    # Without a name, errors name the path, as before.
    with pytest.raises(ciaosr.CiaosrError, match=f"^{tmp_path / 'none.png'}: no such file$"):
        read_image(tmp_path / "none.png")

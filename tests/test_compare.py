"""``ciaosr compare``: the same crop of several models side by side, with PSNR and SSIM."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ciaosr.cli.main import main
from ciaosr.data.benchmark import matlab_downscale
from ciaosr.evaluation import evaluate
from ciaosr.evaluation.compare import compare
from ciaosr.evaluation.figure import BOX_COLOUR, GAP, render
from textures import texture

SCALE = 3


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A 75 x 66 HR (not a multiple of 3 across) in a test-set folder, and its MATLAB LR."""
    root = tmp_path_factory.mktemp("compare")
    hr = texture(7, 66, 75)
    (root / "Set" / "HR").mkdir(parents=True)
    Image.fromarray(hr).save(root / "Set" / "HR" / "img.png")
    t = torch.from_numpy(hr).permute(2, 0, 1)[:, :66, :75].contiguous()
    Image.fromarray(matlab_downscale(t, SCALE).permute(1, 2, 0).numpy()).save(root / "lr.png")
    return root


def _run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_whole_image_scores_are_ciaosr_evals(pair):
    comp = compare(pair / "lr.png", ["bicubic", "edsr-baseline-liif"], SCALE, gt=pair / "Set" / "HR" / "img.png",
                   device="cpu")
    assert [p.label for p in comp.panels] == ["HR (ground truth)", "bicubic", "edsr-baseline-liif"]
    for p in comp.panels[1:]:
        per = evaluate(p.label, pair, ["Set"], [SCALE], device="cpu", progress=False)["results"]["Set"]["3"]
        assert per["lr_source"] == "matlab-bicubic"
        assert p.psnr == pytest.approx(per["per_image"]["img"]["psnr"], abs=1e-9)
        assert p.ssim == pytest.approx(per["per_image"]["img"]["ssim"], abs=1e-9)
        assert p.image.shape == (66, 75, 3)
    assert comp.panels[2].psnr > comp.panels[1].psnr  # the network beats bicubic on this texture


def test_crop_scores_leave_out_the_image_border(pair):
    hr = np.asarray(Image.open(pair / "Set" / "HR" / "img.png"))
    comp = compare(pair / "lr.png", ["bicubic"], SCALE, crop=(0, 10, 30, 24), gt=pair / "Set" / "HR" / "img.png",
                   device="cpu")
    gt_panel, bic = comp.panels
    assert np.array_equal(gt_panel.image, hr[10:34, 0:30])
    assert bic.image.shape == (24, 30, 3)
    # bicubic's output is 8-bit, so its crop is what was scored; the 3 left columns are border.
    diff = bic.image[:, 3:].astype(np.float64) / 255 - hr[10:34, 3:30].astype(np.float64) / 255
    y = (65.738 * diff[..., 0] + 129.057 * diff[..., 1] + 25.064 * diff[..., 2]) / 256
    assert bic.psnr == pytest.approx(-10 * np.log10(np.mean(y ** 2)), abs=1e-6)
    assert bic.ssim is not None
    assert comp.box == (0, 10, 30, 24)


def test_figure_shows_each_crop_and_the_outlined_region(pair):
    comp = compare(pair / "lr.png", ["bicubic"], SCALE, crop=(30, 9, 32, 32), gt=pair / "Set" / "HR" / "img.png",
                   device="cpu")
    fig = np.asarray(render(comp))
    k = 256 // 32  # crops enlarged 8x, nearest neighbour
    over_w = round(75 * (32 * k) / 66)
    x_gt = GAP + over_w + GAP
    shown = fig[GAP:GAP + 32 * k, x_gt:x_gt + 32 * k]
    assert np.array_equal(shown[::k, ::k], comp.panels[0].image)
    x_bic = x_gt + 32 * k + GAP
    assert np.array_equal(fig[GAP:GAP + 32 * k:k, x_bic:x_bic + 32 * k:k], comp.panels[1].image)
    overview = fig[GAP:GAP + 32 * k, GAP:GAP + over_w]
    assert (overview == np.array(BOX_COLOUR, dtype=np.uint8)).all(axis=-1).sum() > 100


def test_cli_writes_the_figure_and_prints_scores(pair, tiny_model_file, tmp_path, capsys):
    out = tmp_path / "new" / "fig.png"  # the missing folder is made
    rc, text, err = _run(capsys, "compare", pair / "lr.png", "--models", "bicubic", tiny_model_file,
                         "--scale", SCALE, "--gt", pair / "Set" / "HR" / "img.png", "--crop", "12,12,40,40",
                         "-o", out, "--device", "cpu")
    assert rc == 0, err
    lines = text.splitlines()
    assert lines[0] == "HR (ground truth)"
    assert lines[1].startswith("bicubic  PSNR ") and " dB  SSIM 0." in lines[1]
    assert lines[2].startswith("tiny  PSNR ")  # a checkpoint is labelled by its file name
    with Image.open(out) as im:
        assert im.format == "PNG" and im.height > 256
    before = out.read_bytes()
    rc, _, err = _run(capsys, "compare", pair / "lr.png", "-m", "bicubic", "-s", SCALE, "-o", out)
    assert rc == 2 and "already exists" in err and out.read_bytes() == before
    rc, text, _ = _run(capsys, "compare", pair / "lr.png", "-m", "bicubic", "-s", 2.5, "-o", out, "--overwrite")
    assert rc == 0 and text.splitlines()[0] == "bicubic"  # no ground truth: no scores
    assert out.read_bytes() != before


@pytest.mark.parametrize("change,needle", [
    ({"--crop": ["60,60,40,40"]}, "leaves the 75x66 output"),
    ({"--crop": ["1,2,3"]}, "--crop must be X,Y,W,H"),
    ({"--gt": ["{lr}"]}, "not the ground truth of a 25x22 LR at x3"),
    ({"--scale": ["1"]}, "--scale must be above 1"),
    ({"--models": ["bicubic", "no-such-model"]}, "unknown model 'no-such-model'"),
    ({"-o": ["{tmp}/fig.jpg"]}, "give a .png name"),
    ({"-o": ["{lr}/sub/fig.png"]}, "cannot create output folder"),  # below a file
    ({"-o": ["{tmp}/new/fig.png"], "--crop": ["60,60,40,40"]}, "leaves the 75x66 output"),  # no folder left
])
def test_bad_input_is_one_line(pair, tmp_path, capsys, change, needle):
    options = {"--models": ["bicubic"], "--scale": [str(SCALE)], "--gt": [str(pair / "Set" / "HR" / "img.png")],
               "-o": [str(tmp_path / "fig.png")], "--device": ["cpu"]}
    for key, values in change.items():
        options[key] = [v.replace("{lr}", str(pair / "lr.png")).replace("{tmp}", str(tmp_path)) for v in values]
    argv = ["compare", str(pair / "lr.png")] + [x for key, values in options.items() for x in (key, *values)]
    rc, _, err = _run(capsys, *argv)
    assert rc == 2 and needle in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "fig.png").exists() and not (tmp_path / "new").exists()

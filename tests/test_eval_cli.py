"""``ciaosr eval`` and ``ciaosr prepare-benchmark``: published numbers, JSON, bad input."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch
import torch.nn.functional as F

from ciaosr.cli.main import main
from ciaosr.data.benchmark import BenchmarkSet, load_rgb
from ciaosr.evaluation.protocol import Protocol
from ciaosr.evaluation.mmedit_tiling import tiled_upsample
from ciaosr.evaluation.runner import evaluate, parse_steps, super_resolve

# shared/docs/evaluation-protocol.md, "Reference numbers": bicubic, Y, shave s.
BICUBIC_REF = {
    "Set5": {"2": 33.66, "3": 30.39, "4": 28.42},
    "Set14": {"2": 30.33, "3": 27.63, "4": 26.09},  # the copy in shared/datasets
    "B100": {"2": 29.56, "3": 27.21, "4": 25.96},
    "Urban100": {"2": 26.88, "3": 24.46, "4": 23.14},
}
# shared/parity/FORMAT.md: LIIF's own test.py on Set5 with the official checkpoint.
LIIF_SET5 = {"2": 37.9877, "3": 34.3997, "4": 32.2375}
LIIF_CKPT = "weights/liif-edsr-baseline/edsr-baseline-liif.pth"


def _run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def _one_line_error(rc, err):
    assert rc == 2
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err


def test_bicubic_set5_matches_published_and_json(shared, tmp_path, capsys):
    root = shared("datasets")
    shared("datasets/Set5")
    js = tmp_path / "out" / "res.json"
    rc, out, _ = _run(capsys, "eval", "--model", "bicubic", "--data-root", str(root), "--datasets", "Set5",
                      "--scales", "2", "3", "4", "--json", str(js), "--device", "cpu")
    assert rc == 0
    assert "| Set5 |" in out and "x2" in out and "x4" in out
    report = json.loads(js.read_text())
    assert report["protocol"] == "liif" and report["model"] == "bicubic"
    res = report["results"]["Set5"]
    assert set(res) == {"2", "3", "4"}
    for s, ref in BICUBIC_REF["Set5"].items():
        assert abs(res[s]["psnr"] - ref) < 0.05, (s, res[s]["psnr"])
        assert 0.7 < res[s]["ssim"] < 1.0
        per = res[s]["per_image"]
        assert set(per) == {"baby", "bird", "butterfly", "head", "woman"}
        assert res[s]["psnr"] == pytest.approx(sum(v["psnr"] for v in per.values()) / 5, abs=1e-9)
        assert res[s]["ssim"] == pytest.approx(sum(v["ssim"] for v in per.values()) / 5, abs=1e-9)
        assert res[s]["lr_source"] == "file"


def test_generated_lr_equals_premade_so_scores_match(shared, tmp_path):
    src = shared("datasets/Set5")
    (tmp_path / "Set5").mkdir()
    shutil.copytree(src / "HR", tmp_path / "Set5" / "HR")  # no LR folder: made on the fly
    a = evaluate("bicubic", src.parent, ["Set5"], [3], metrics=["psnr"], device="cpu", progress=False)
    b = evaluate("bicubic", tmp_path, ["Set5"], [3], metrics=["psnr"], device="cpu", progress=False)
    assert b["results"]["Set5"]["3"]["lr_source"] == "matlab-bicubic"
    assert a["results"]["Set5"]["3"]["per_image"] == b["results"]["Set5"]["3"]["per_image"]


def test_on_the_fly_large_scale_and_div2k_rgb(shared):
    root = shared("datasets")
    shared("datasets/DIV2K-mini")
    bset = BenchmarkSet(root / "Set5", 6)
    pair = bset[bset.names().index("woman")]  # 344 x 228 HR
    assert pair.lr.shape[-2:] == (57, 38) and pair.hr.shape[-2:] == (342, 228)
    rep = evaluate("bicubic", root, ["DIV2K-mini"], [4], metrics=["psnr"], device="cpu", progress=False)
    e = rep["results"]["DIV2K-mini"]["4"]
    assert e["lr_source"] == "file" and e["num_images"] == 2
    assert Protocol("liif").border(4, "DIV2K-mini") == 10  # RGB, shave s + 6
    assert 20 < e["psnr"] < 40


def test_mmedit_protocol_runs_on_gtmod12(shared):
    root = shared("datasets")
    shared("datasets/Set5")
    rep = evaluate("bicubic", root, ["Set5"], [4], protocol="mmedit", device="cpu", progress=False)
    e = rep["results"]["Set5"]["4"]
    assert e["lr_source"] == "matlab-bicubic"
    # GTmod12 HR, LR made from it: a slightly different figure from the LIIF protocol's.
    assert abs(e["psnr"] - BICUBIC_REF["Set5"]["4"]) < 0.2 and 0.7 < e["ssim"] < 1.0
    pair = BenchmarkSet(root / "Set5", 4, "mmedit")[0]
    assert pair.hr.shape[-2] % 12 == 0 and pair.hr.shape[-1] % 12 == 0


class _Nearest:
    """Pixel replication: tile-invariant, so tiled output must equal the whole image."""

    def __init__(self):
        self.sizes = []

    def upsample(self, lr, size, chunk=30000):
        self.sizes.append((tuple(lr.shape[-2:]), tuple(size)))
        return F.interpolate(lr, size=size, mode="nearest")


@pytest.mark.parametrize("hw", [(200, 250), (57, 86), (192, 192), (30, 40)])
def test_tiles_cover_and_average_like_mmedit(hw):
    lr = torch.rand(1, 3, *hw)
    model = _Nearest()
    out = tiled_upsample(model, lr, 3)
    torch.testing.assert_close(out, F.interpolate(lr, scale_factor=3, mode="nearest"))
    t = min(192, *hw)
    if hw == (57, 86):  # tiles at columns 0, 25, 29 (shared/parity/FORMAT.md)
        assert len(model.sizes) == 3
    if t > 32:
        assert all(s == ((t, t), (3 * t, 3 * t)) for s in model.sizes)


def test_multi_step_chain_sizes():
    model = _Nearest()
    lr = torch.rand(1, 3, 10, 13)
    out = super_resolve(model, lr, (120, 156), 12, Protocol("liif"), parse_steps("2,4,12"))
    assert out.shape[-2:] == (120, 156)
    assert [s[1] for s in model.sizes] == [(20, 26), (40, 52), (120, 156)]
    model.sizes.clear()
    super_resolve(model, lr, (40, 52), 4, Protocol("liif"), parse_steps("2,4,12"))
    assert [s[1] for s in model.sizes] == [(20, 26), (40, 52)]


def test_steps_through_cli(shared, tmp_path, capsys):
    root = shared("datasets")
    js = tmp_path / "r.json"
    rc, out, _ = _run(capsys, "eval", "--model", "bicubic", "--data-root", str(root), "--datasets", "Set5",
                      "--scales", "4", "--steps", "2,4", "--metrics", "psnr", "--json", str(js),
                      "--save-images", str(tmp_path / "img"))
    assert rc == 0 and "steps 2,4" in out
    rep = json.loads(js.read_text())
    assert rep["steps"] == [2.0, 4.0] and "ssim" not in rep["results"]["Set5"]["4"]
    saved = load_rgb(tmp_path / "img" / "Set5" / "X4" / "bird.png")
    assert saved.shape == (3, 288, 288)


@pytest.mark.parametrize("argv,needle", [
    (["--datasets", "NoSuchSet"], "unknown dataset"),
    (["--scales", "1"], "above 1"),
    (["--steps", "4,2"], "increase"),
    (["--steps", "x"], "--steps"),
    (["--protocol", "mmedit", "--scales", "2.5"], "integer"),
    (["--device", "nonsense"], "device"),
    (["--precision", "fp16", "--device", "cpu"], "fp16 needs a GPU"),
])
def test_bad_inputs_give_one_line_error(shared, capsys, argv, needle):
    root = shared("datasets")
    rc, _, err = _run(capsys, "eval", "--model", "bicubic", "--data-root", str(root), "--datasets", "Set5", *argv)
    _one_line_error(rc, err)
    assert needle in err


def test_missing_data_root(tmp_path, capsys):
    rc, _, err = _run(capsys, "eval", "--model", "bicubic", "--data-root", str(tmp_path / "nope"))
    _one_line_error(rc, err)
    assert "data root not found" in err


def test_unknown_model_is_one_line_error(shared, capsys):
    root = shared("datasets")
    rc, _, err = _run(capsys, "eval", "--model", "no-such-model", "--data-root", str(root), "--datasets", "Set5",
                      "--scales", "4")
    _one_line_error(rc, err)


def test_prepare_benchmark_writes_exact_lr_and_keeps_existing(shared, tmp_path, capsys):
    src = shared("datasets/Set5")
    hr = tmp_path / "Set5" / "HR"
    hr.mkdir(parents=True)
    for name in ("woman.png", "bird.png"):
        shutil.copy(src / "HR" / name, hr / name)
    rc, out, err = _run(capsys, "prepare-benchmark", "--hr", str(hr), "--scales", "3", "4")
    assert rc == 0 and "wrote 4" in out
    assert err.strip() == "note: ciaosr prepare-benchmark is an alias of `ciaosr data prepare --hr DIR`"
    for s in (3, 4):
        for stem in ("woman", "bird"):
            got = load_rgb(tmp_path / "Set5" / "LR_bicubic" / f"X{s}" / f"{stem}x{s}.png")
            assert torch.equal(got, load_rgb(src / "LR_bicubic" / f"X{s}" / f"{stem}x{s}.png"))
    target = tmp_path / "Set5" / "LR_bicubic" / "X4" / "birdx4.png"
    target.write_bytes(b"placeholder")
    rc, out, _ = _run(capsys, "prepare-benchmark", "--hr", str(hr), "--scales", "4")
    assert rc == 0 and "kept 2" in out and target.read_bytes() == b"placeholder"
    rc, out, _ = _run(capsys, "prepare-benchmark", "--hr", str(hr), "--scales", "4", "--overwrite",
                      "--out", str(tmp_path / "Set5"))
    assert rc == 0 and "wrote 2" in out
    assert torch.equal(load_rgb(target), load_rgb(src / "LR_bicubic" / "X4" / "birdx4.png"))
    leftovers = [p for p in (tmp_path / "Set5").rglob("*") if p.name.startswith(".")]
    assert leftovers == []


def test_prepare_benchmark_bad_inputs(tmp_path, capsys):
    rc, _, err = _run(capsys, "prepare-benchmark", "--hr", str(tmp_path / "missing"), "--scales", "2")
    _one_line_error(rc, err)
    (tmp_path / "empty").mkdir()
    rc, _, err = _run(capsys, "prepare-benchmark", "--hr", str(tmp_path / "empty"), "--scales", "2")
    _one_line_error(rc, err)
    rc, _, err = _run(capsys, "prepare-benchmark", "--hr", str(tmp_path / "empty"), "--scales", "1")
    _one_line_error(rc, err)


def test_liif_checkpoint_per_image_matches_official(shared, capsys, tmp_path):
    """Two Set5 images (one non-square) at x3 and x4: fast; the full set is a slow test."""
    ckpt = shared(LIIF_CKPT)
    src = shared("datasets/Set5")
    names = ("butterfly", "woman")
    for sub in ("HR", "LR_bicubic/X3", "LR_bicubic/X4"):
        (tmp_path / "Set5" / sub).mkdir(parents=True)
    for n in names:
        shutil.copy(src / "HR" / f"{n}.png", tmp_path / "Set5" / "HR")
        for s in (3, 4):
            shutil.copy(src / "LR_bicubic" / f"X{s}" / f"{n}x{s}.png", tmp_path / "Set5" / "LR_bicubic" / f"X{s}")
    js = tmp_path / "liif.json"
    rc, _, _ = _run(capsys, "eval", "--model", str(ckpt), "--data-root", str(tmp_path), "--datasets", "Set5",
                    "--scales", "3", "4", "--metrics", "psnr", "--device", "cpu", "--json", str(js))
    assert rc == 0
    res = json.loads(js.read_text())["results"]["Set5"]
    for s, name, ref in [("3", "butterfly", 31.0862), ("3", "woman", 32.8933),
                         ("4", "butterfly", 28.6852), ("4", "woman", 30.6617)]:
        assert abs(res[s]["per_image"][name]["psnr"] - ref) < 0.005, (s, name)


@pytest.mark.slow
def test_liif_checkpoint_set5_all_scales(shared, capsys, tmp_path):
    ckpt = shared(LIIF_CKPT)
    root = shared("datasets")
    js = tmp_path / "liif.json"
    rc, _, _ = _run(capsys, "eval", "--model", str(ckpt), "--data-root", str(root), "--datasets", "Set5",
                    "--scales", "2", "3", "4", "--metrics", "psnr", "--device", "cpu", "--json", str(js))
    assert rc == 0
    res = json.loads(js.read_text())["results"]["Set5"]
    for s, ref in LIIF_SET5.items():
        assert abs(res[s]["psnr"] - ref) < 0.005, (s, res[s]["psnr"])
    # Per image, as LIIF's test.py printed them (FORMAT.md).
    assert res["4"]["per_image"]["butterfly"]["psnr"] == pytest.approx(28.6852, abs=5e-4)


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["Set14", "B100", "Urban100"])
def test_bicubic_baselines_full_sets(shared, dataset):
    root = shared("datasets")
    shared(f"datasets/{dataset}")
    rep = evaluate("bicubic", root, [dataset], [2, 3, 4], metrics=["psnr"], device="cpu", progress=False)
    for s, ref in BICUBIC_REF[dataset].items():
        got = rep["results"][dataset][s]["psnr"]
        assert abs(got - ref) < 0.05, (dataset, s, got)


def test_bf16_evaluation_stays_close_to_fp32(shared, capsys, tmp_path):
    """--precision bf16 runs the model under autocast; PSNR moves by a few hundredths of a dB."""
    src = shared("datasets/Set5")
    (tmp_path / "Set5" / "HR").mkdir(parents=True)
    (tmp_path / "Set5" / "LR_bicubic" / "X4").mkdir(parents=True)
    shutil.copy(src / "HR" / "bird.png", tmp_path / "Set5" / "HR")
    shutil.copy(src / "LR_bicubic" / "X4" / "birdx4.png", tmp_path / "Set5" / "LR_bicubic" / "X4")
    values = {}
    for precision in ("fp32", "bf16"):
        js = tmp_path / f"{precision}.json"
        rc, _, _ = _run(capsys, "eval", "--model", "edsr-baseline-liif", "--data-root", str(tmp_path),
                        "--datasets", "Set5", "--scales", "4", "--metrics", "psnr", "--device", "cpu",
                        "--precision", precision, "--json", str(js))
        assert rc == 0
        rep = json.loads(js.read_text())
        assert rep["precision"] == precision
        values[precision] = rep["results"]["Set5"]["4"]["psnr"]
    assert values["fp32"] != values["bf16"]  # autocast really ran
    assert abs(values["fp32"] - values["bf16"]) < 0.1


# --------------------------------------------------------------------------------------
# --json: refused before any work
# --------------------------------------------------------------------------------------
def _json_refused(capsys, rc) -> str:
    _, err = capsys.readouterr()
    _one_line_error(rc, err)
    return err.strip()


def _eval(tmp_path, json_arg):
    # A data root that does not exist: had the work started, that would be the error.
    return main(["eval", "--model", "bicubic", "--data-root", str(tmp_path / "no-data"), "--datasets", "Set5",
                 "--json", json_arg])


def test_eval_json_to_a_folder_is_refused_first(tmp_path, capsys):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "old.json").write_text("{}")
    assert "is a folder" in _json_refused(capsys, _eval(tmp_path, str(folder)))
    assert [p.name for p in folder.iterdir()] == ["old.json"] and (folder / "old.json").read_text() == "{}"


def test_eval_json_below_a_file_is_refused_first(tmp_path, capsys):
    (tmp_path / "file.txt").write_text("keep")
    assert "not a folder" in _json_refused(capsys, _eval(tmp_path, str(tmp_path / "file.txt" / "r.json")))
    assert (tmp_path / "file.txt").read_text() == "keep"


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_eval_json_where_no_file_can_be_made_is_refused_first(tmp_path, capsys):
    assert "not writable" in _json_refused(capsys, _eval(tmp_path, "/proc/ciaosr-results.json"))


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write anywhere")
def test_eval_json_in_a_read_only_folder_is_refused_first(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert "not writable" in _json_refused(capsys, _eval(tmp_path, str(ro / "sub" / "r.json")))
    finally:
        ro.chmod(0o755)
    assert list(ro.iterdir()) == []


@pytest.mark.parametrize("native", [True, False])
def test_precision_auto_picks_bf16_only_where_the_cpu_has_it(monkeypatch, tmp_path, capsys, native):
    """--precision auto: bf16 on a CPU with native bf16, fp32 (and no warning) elsewhere;
    an explicit bf16 on a CPU without it runs with the one-line warning."""
    import numpy as np
    from PIL import Image

    from ciaosr import runtime

    (tmp_path / "Set5" / "HR").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(tmp_path / "Set5" / "HR" / "bird.png")
    monkeypatch.setattr(runtime, "_cpu_has_native_bf16", lambda: native)
    monkeypatch.setattr(runtime, "_slow_bf16_warned", False)
    for asked, expected in (("auto", "bf16" if native else "fp32"), ("bf16", "bf16")):
        js = tmp_path / f"{asked}.json"
        rc, _, err = _run(capsys, "eval", "--model", "bicubic", "--data-root", str(tmp_path), "--datasets", "Set5",
                          "--scales", "2", "--metrics", "psnr", "--device", "cpu", "--precision", asked,
                          "--json", str(js))
        assert rc == 0
        assert json.loads(js.read_text())["precision"] == expected
        assert (runtime.SLOW_BF16_WARNING in err) == (asked == "bf16" and not native), err


def test_an_image_too_small_for_the_border_is_one_line(tmp_path, capsys):
    from PIL import Image

    (tmp_path / "Set5" / "HR").mkdir(parents=True)
    Image.new("RGB", (30, 20), (90, 120, 200)).save(tmp_path / "Set5" / "HR" / "tiny.png")
    rc, _, err = _run(capsys, "eval", "--model", "bicubic", "--data-root", str(tmp_path), "--datasets", "Set5",
                      "--scales", "10", "--device", "cpu")
    _one_line_error(rc, err)
    assert "Set5/tiny: 30x20 is too small to score at x10 (the protocol drops 10 pixels at each border)" in err

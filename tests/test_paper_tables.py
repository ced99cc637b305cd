"""The paper's tables (``ciaosr eval --table``), the Manga109 and DIV2K-valid eval sets.

Test sets are generated: small random-texture images named like the real ones (DIV2K
0801.png with the official LR names 0801x2.png; Manga109's titles), so the names,
aliases, pairing and scoring rules are exercised without the real data.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

import ciaosr
from ciaosr.cli.main import main
from ciaosr.data.benchmark import lr_filename, matlab_downscale
from ciaosr.errors import CiaosrError
from ciaosr.evaluation import evaluate, find_eval_set
from ciaosr.data.sets.layout import resolve_dataset
from ciaosr.paper import format_markdown, load_table, run_table
from textures import texture

MANGA = ["AisazuNihaIrarenai", "AkkeraKanjinchou"]
DIV2K = ["0801", "0802"]


def _make_set(root, folder: str, names, size=(96, 80), lr_scales=(), seed=0):
    """<root>/<folder>/HR/<name>.png and, for each of ``lr_scales``, the MATLAB-bicubic
    LR as the EDSR pack (and DIV2K's official LR) names it."""
    h, w = size
    for k, name in enumerate(names):
        hr = texture(seed + k, h, w)
        (root / folder / "HR").mkdir(parents=True, exist_ok=True)
        Image.fromarray(hr).save(root / folder / "HR" / f"{name}.png")
        for s in lr_scales:
            d = root / folder / "LR_bicubic" / f"X{s}"
            d.mkdir(parents=True, exist_ok=True)
            t = torch.from_numpy(hr).permute(2, 0, 1)[:, : h - h % s, : w - w % s].contiguous()
            Image.fromarray(matlab_downscale(t, s).permute(1, 2, 0).numpy()).save(d / lr_filename(name, s))
    return root / folder


def _psnr(sr: np.ndarray, hr: np.ndarray, border: int, rgb: bool) -> float:
    """Written out from shared/docs/evaluation-protocol.md, independently of the package."""
    diff = sr.astype(np.float64) / 255 - hr.astype(np.float64) / 255
    if not rgb:
        diff = (65.738 * diff[..., 0] + 129.057 * diff[..., 1] + 25.064 * diff[..., 2]) / 256
    diff = diff[border:-border, border:-border]
    return -10 * math.log10(np.mean(diff ** 2))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("benchmarks")
    _make_set(root, "DIV2K_valid", DIV2K, size=(96, 96), lr_scales=(2,), seed=10)
    _make_set(root, "Manga109", MANGA, size=(120, 84), seed=20)
    _make_set(root, "Set5", ["baby", "bird"], size=(72, 64), seed=30)
    _make_set(root, "Urban100", ["img_001", "img_002"], size=(96, 96), seed=40)
    return root


@pytest.fixture(scope="module")
def tiny_rdn_liif(tmp_path_factory):
    torch.manual_seed(0)
    net = ciaosr.build_model("rdn-liif", {"mid_channels": 8, "channel_growth": 8, "num_blocks": 1, "num_layers": 1},
                             {"hidden": [16]})
    return str(ciaosr.save_checkpoint(net, tmp_path_factory.mktemp("rdn") / "tiny-rdn-liif.safetensors"))


def _run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


# -- the eval sets --------------------------------------------------------------------

@pytest.mark.parametrize("spelling,canonical", [
    ("Manga109", "Manga109"), ("manga109", "Manga109"), ("DIV2K", "DIV2K"), ("div2k-valid", "DIV2K"),
    ("DIV2K_valid", "DIV2K"), ("BSDS100", "B100"), ("urban100", "Urban100")])
def test_names_and_aliases(spelling, canonical):
    assert find_eval_set(spelling).name == canonical


def test_known_sets_and_their_sizes():
    assert find_eval_set("Manga109").images == 109 and not find_eval_set("Manga109").rgb
    assert find_eval_set("DIV2K").images == 100 and find_eval_set("DIV2K").rgb
    assert find_eval_set("T91") is None


def test_eval_sets_are_the_catalogs_each_spelled_once():
    """The sets ``ciaosr eval`` knows are those the catalog's sources provide: the HR
    folder ``ciaosr data prepare`` makes for each is found by its folder name, with its
    image count; no spelling names two sets; only DIV2K (and samples of it) is scored on RGB."""
    from ciaosr.data.sets.catalog import all_datasets, all_eval_sets, is_rgb_dataset

    assert [es.name for es in all_eval_sets()] == ["DIV2K", "Set5", "Set14", "B100", "Urban100", "Manga109"]
    spellings = [s.lower() for es in all_eval_sets() for s in es.spellings()]
    assert len(spellings) == len(set(spellings))
    for ds in all_datasets():
        for f in ds.hr_folders():
            es = find_eval_set(f.path.split("/")[0])
            assert (es in ds.eval_sets and es.images == f.count) if ds.eval_set else es is None, f.path
    assert [is_rgb_dataset(n) for n in ("div2k_valid", "DIV2K-mini", "Set5", "bsd100", "T91")] == [
        True, True, False, False, False]


def test_div2k_alias_finds_the_valid_folder(data):
    assert resolve_dataset(data, "DIV2K").name == "DIV2K_valid"
    assert resolve_dataset(data, "div2k-val").name == "DIV2K_valid"


def test_unknown_set_lists_the_known_ones(data, capsys):
    rc, _, err = _run(capsys, "eval", "--model", "bicubic", "--data-root", data, "--datasets", "Manga110")
    assert rc == 2 and len(err.strip().splitlines()) == 1
    for name in ("Set5", "Set14", "B100", "Urban100", "Manga109", "DIV2K"):
        assert name in err
    with pytest.raises(CiaosrError, match="set folders under it: DIV2K_valid, Manga109"):
        resolve_dataset(data, "Set14")


def test_div2k_rgb_shave_s_plus_6_official_lr_then_on_the_fly(data, tmp_path):
    rep = evaluate("bicubic", data, ["DIV2K"], [2, 6], metrics=["psnr"], device="cpu", progress=False,
                   save_images=tmp_path)
    x2, x6 = rep["results"]["DIV2K"]["2"], rep["results"]["DIV2K"]["6"]
    assert x2["lr_source"] == "file" and x6["lr_source"] == "pil-bicubic"
    assert set(x2["per_image"]) == set(DIV2K) and x2["num_images"] == 2
    for s, res in ((2, x2), (6, x6)):
        for name in DIV2K:
            sr = np.asarray(Image.open(tmp_path / "DIV2K" / f"X{s}" / f"{name}.png"))
            hr = np.asarray(Image.open(data / "DIV2K_valid" / "HR" / f"{name}.png"))[: sr.shape[0], : sr.shape[1]]
            # bicubic's output is 8-bit, so the saved PNG is it (to float32 rounding).
            assert res["per_image"][name]["psnr"] == pytest.approx(_psnr(sr, hr, s + 6, rgb=True), abs=1e-6)
            assert res["per_image"][name]["psnr"] != pytest.approx(_psnr(sr, hr, s, rgb=False), abs=1e-3)


def test_manga109_y_shave_s(data, tmp_path):
    rep = evaluate("bicubic", data, ["manga109"], [3], metrics=["psnr"], device="cpu", progress=False,
                   save_images=tmp_path)
    res = rep["results"]["manga109"]["3"]
    assert res["lr_source"] == "matlab-bicubic" and set(res["per_image"]) == set(MANGA)
    for name in MANGA:
        sr = np.asarray(Image.open(tmp_path / "manga109" / "X3" / f"{name}.png"))
        hr = np.asarray(Image.open(data / "Manga109" / "HR" / f"{name}.png"))[: sr.shape[0], : sr.shape[1]]
        assert res["per_image"][name]["psnr"] == pytest.approx(_psnr(sr, hr, 3, rgb=False), abs=1e-6)


# -- the published numbers -------------------------------------------------------------

def test_shipped_numbers_equal_the_transcription(shared):
    from paper_tables_md import parse

    md = parse(shared("docs/paper-tables.md"))
    assert sorted(md) == [1, 2, 3, 6, 8]
    for number, tab in md.items():
        table = load_table(number)
        assert table.title == tab["title"]
        shipped = {r.name: r.cells for r in table.rows}
        assert list(shipped) == list(tab["rows"])
        for name, cells in tab["rows"].items():
            want = {(ds, float(s), tuple(float(x) for x in st) if st else None): v for (ds, s, st), v in cells.items()}
            assert shipped[name] == want, (number, name)


def test_published_tables_load_with_source_and_rows():
    t1 = load_table(1)
    row = t1.row_for("edsr-baseline-liif")
    assert row.name == "EDSR-baseline-LIIF" and t1.published(row, "DIV2K", 30, None) == {"psnr": 20.48}
    assert t1.row_for("bicubic").name == "Bicubic"
    assert [r.why_no_model is not None for r in t1.rows].count(True) == 3  # the fixed-scale networks
    t3 = load_table(3)
    assert t3.published(t3.row_for("rdn-metasr"), "Set5", 8, None) == {"psnr": 29.96, "note": "sic"}
    assert t3.published(t3.row_for("rdn-metasr"), "Set5", 12, None) is None  # '-' in the paper
    t6 = load_table(6)
    assert [v.steps for v in t6.variants] == [(2.0, 4.0, 12.0), (2.0, 12.0), None]
    assert t6.published(t6.row_for("rdn-ciaosr"), "Manga109", 12, (2, 12)) == {"psnr": 22.53, "ssim": 0.721}
    assert load_table(8).metrics == ("ssim", "lpips")
    with pytest.raises(CiaosrError, match="tables: 1, 2, 3, 6, 8"):
        load_table(4)


# -- running a table ---------------------------------------------------------------------

def test_table2_side_by_side_with_missing_set_and_rowless_model(data, tiny_rdn_liif, tmp_path, capsys):
    js = tmp_path / "t2.json"
    rc, out, err = _run(capsys, "eval", "--table", 2, "--models", tiny_rdn_liif, "bicubic", "--data-root", data,
                        "--datasets", "Set5", "Manga109", "Set14", "--scales", 2, 4, "--device", "cpu", "--json", js)
    assert rc == 0, err
    report = json.loads(js.read_text())
    assert report["table"] == 2 and report["source"]["arxiv"] == "2212.04362"
    assert [m["row"] for m in report["models"]] == ["RDN-LIIF", None]
    cells = {(c["model"], c["dataset"], c["scale"]): c for c in report["cells"]}
    assert len(cells) == 2 * 3 * 2
    # Our figure is plain ciaosr eval's; the paper's is Table 2's; the difference theirs.
    plain = evaluate(tiny_rdn_liif, data, ["Set5", "Manga109"], [2, 4], metrics=["psnr"], device="cpu", progress=False)
    for ds, s, paper in (("Set5", 2, 38.17), ("Set5", 4, 32.50), ("Manga109", 2, 39.26), ("Manga109", 4, 31.20)):
        c = cells[(tiny_rdn_liif, ds, s)]
        assert c["ours"]["psnr"] == plain["results"][ds][str(s)]["psnr"]
        assert c["paper"] == {"psnr": paper}
        assert c["difference"]["psnr"] == pytest.approx(c["ours"]["psnr"] - paper, abs=1e-12)
        assert c["num_images"] == 2 and c["expected_images"] == (5 if ds == "Set5" else 109)
    set14 = cells[(tiny_rdn_liif, "Set14", 2)]
    assert set14["ours"] is None and "Set14 not found" in set14["missing"]
    assert cells[("bicubic", "Set5", 2)]["paper"] is None and cells[("bicubic", "Set5", 2)]["ours"]["psnr"] > 20
    # The Markdown: three lines per compared model, one for the row-less one, notes one line each.
    assert "| paper (RDN-LIIF) | 38.17 | 32.50 |" in out.replace("  ", " ")
    assert "| difference |" in out and "no data" in out and "(2/5 images)" in out
    notes = [ln for ln in out.splitlines() if ln.startswith("- ")]
    assert any(ln.startswith("- Set14: missing") for ln in notes)
    assert any(ln.startswith("- bicubic: Table 2 has no bicubic row") for ln in notes)
    assert any("parameters where the paper's RDN-LIIF has 22,320,835" in ln for ln in notes)
    assert out.count("| bicubic | ours |") == 1 and "paper (None)" not in out


def test_table1_shipped_model_on_div2k_named_like_the_real_one(data):
    report = run_table(1, ["edsr-baseline-liif"], data, scales=[2, 30], device="cpu", progress=False)
    assert report["models"] == [{"model": "edsr-baseline-liif", "architecture": "edsr-baseline-liif",
                                 "row": "EDSR-baseline-LIIF"}]
    assert report["notes"] == []  # the paper's network, its row, its set: nothing to say
    x2, x30 = report["cells"]
    assert (x2["paper"], x30["paper"]) == ({"psnr": 34.67}, {"psnr": 20.48})
    rep = report["evaluations"][0]["report"]["results"]["DIV2K_valid"]
    assert rep["2"]["lr_source"] == "file" and rep["30"]["lr_source"] == "pil-bicubic"
    assert x2["ours"]["psnr"] == rep["2"]["psnr"] and x2["num_images"] == 2 and x2["expected_images"] == 100
    assert "(2/100 images)" in format_markdown(report)


def test_table6_multi_step_for_any_model(data, tiny_model_file):
    report = run_table(6, [tiny_model_file], data, datasets=["Urban100"], device="cpu", progress=False)
    assert report["variants"] == ["x2 -> x4 -> x12", "x2 -> x12", "x12 in one step"]
    ours = {c["variant"]: c["ours"] for c in report["cells"]}
    for variant, steps in (("x2 -> x4 -> x12", [2, 4, 12]), ("x2 -> x12", [2, 12]), ("x12 in one step", None)):
        plain = evaluate(tiny_model_file, data, ["Urban100"], [12], metrics=["psnr", "ssim"], steps=steps,
                         device="cpu", progress=False)["results"]["Urban100"]["12"]
        assert ours[variant] == {"psnr": plain["psnr"], "ssim": plain["ssim"]}
    assert ours["x2 -> x12"] != ours["x12 in one step"]
    assert report["notes"] == [f"{tiny_model_file}: Table 6 has no edsr-baseline-ciaosr row (its models: rdn-ciaosr); "
                               "our figures only"]
    md = format_markdown(report)
    assert f"| {tiny_model_file}, x2 -> x4 -> x12 | ours |" in md and "PSNR / SSIM" in md


def test_table3_marks_the_misprinted_cells(data, tmp_path, capsys):
    """A figure the transcription marks (sic) is printed with its mark, and the notes say
    what the mark means and where it is."""
    torch.manual_seed(0)
    net = ciaosr.build_model("rdn-itsrn", {"mid_channels": 8, "channel_growth": 8, "num_blocks": 1, "num_layers": 1},
                             {"hidden": [16], "ensemble_hidden": 8})
    model = str(ciaosr.save_checkpoint(net, tmp_path / "tiny-rdn-itsrn.safetensors"))
    rc, out, err = _run(capsys, "eval", "--table", 3, "--models", model, "--data-root", data,
                        "--datasets", "Manga109", "--scales", 8, 12, "--device", "cpu")
    assert rc == 0, err
    paper = next(ln for ln in out.splitlines() if ln.startswith("| | paper (RDN-ITSRN) |"))
    assert paper.split("|")[3:5] == [" 25.04 ", " 23.35 (sic) "]
    assert "- (sic) RDN-ITSRN Manga109 x12: printed so in the paper and most likely a misprint" in out


def test_table8_without_lpips_weights_says_why(data, tiny_rdn_liif, tmp_path):
    report = run_table(8, [tiny_rdn_liif], data, scales=[2], device="cpu", progress=False,
                       lpips_weights=tmp_path / "no-alexnet.pth")
    (cell,) = report["cells"]
    assert set(cell["ours"]) == {"ssim"} and cell["paper"] == {"ssim": 0.934, "lpips": 0.104}
    assert set(cell["difference"]) == {"ssim"}
    assert any(n.startswith("lpips not computed: ") and "no-alexnet.pth" in n for n in report["notes"])
    assert "| difference | " in format_markdown(report) and " / -" in format_markdown(report)


@pytest.mark.parametrize("argv,needle", [
    (["--table", "2", "--input", "x"], "--table needs --data-root"),
    (["--table", "2", "--data-root", "{root}", "--steps", "2,4"], "--steps does not go with --table"),
    (["--table", "2", "--data-root", "{root}", "--datasets", "DIV2K"], "Table 2 has no dataset DIV2K"),
    (["--table", "3", "--data-root", "{root}", "--scales", "4"], "Table 3 has no scale 4 (its scales: 6, 8, 12)"),
    (["--table", "2", "--data-root", "{root}", "--models", "no-such-model"], "unknown model 'no-such-model'"),
    (["--data-root", "{root}", "--models", "bicubic"], "--models is for --table"),
    (["--table", "4", "--data-root", "{root}"], "invalid choice: 4"),
])
def test_table_bad_input_is_one_line(data, capsys, argv, needle):
    rc, _, err = _run(capsys, "eval", *[a.replace("{root}", str(data)) for a in argv])
    assert rc == 2 and needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_mmedit_protocol_is_said(data):
    report = run_table(2, ["bicubic"], data, datasets=["Set5"], scales=[2], protocol="mmedit", device="cpu",
                       progress=False)
    assert report["protocol"] == "mmedit" and report["evaluations"][0]["report"]["protocol"] == "mmedit"
    assert report["notes"][0].startswith("mmedit protocol: the paper's figures are scored on Y, shave s under the LIIF")


def test_table1_with_one_model_option_compares_bicubic(data, capsys):
    rc, out, err = _run(capsys, "eval", "--table", 1, "--model", "bicubic", "--data-root", data, "--scales", 2,
                        "--device", "cpu")
    assert rc == 0, err
    lines = out.splitlines()
    ours = next(ln for ln in lines if ln.startswith("| bicubic | ours | "))
    value = float(ours.split("|")[3].split()[0])
    assert "| | paper (Bicubic) | 31.01 |" in out
    diff = next(ln for ln in lines if ln.startswith("| | difference | "))
    assert float(diff.split("|")[3]) == pytest.approx(value - 31.01, abs=0.0101)  # both printed to 0.01
    assert "(2/100 images)" in ours and not [ln for ln in lines if ln.startswith("- ")]

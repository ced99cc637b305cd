"""LMF's decoders (LM-LIIF, LM-LTE, LM-CiaoSR): parity with the official forward from official-format
checkpoints, detection among the LIIF-like families, parameter counts, the per-cell
modulation tables, training.

Vectors: ``tests/data/official/lmf_<variant>.pth`` (an official-format checkpoint of a
small model) and ``lmf_<variant>_vectors.pt`` (inputs, the official outputs, the official
parameter counts), made by ``benchmarks/official/make_lmf_vectors.py`` with the official
LMF code in a throwaway environment (its docstring and the file's ``note`` say how).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import ciaosr
from ciaosr.decoders.ciaosr import CiaoSRDecoder
from ciaosr.decoders.liif import LIIFDecoder
from ciaosr.decoders.lmciaosr import LMCiaoSRDecoder, cropped_non_local
from ciaosr.decoders.lmliif import LMLIIFDecoder
from ciaosr.decoders.lmlte import LMLTEDecoder
from ciaosr.decoders.lte import LTEDecoder
from ciaosr.errors import CiaosrError
from ciaosr.models.factory import count_parameters

from test_decoders_lte_metasr import full_grid, train_smoke

DATA = Path(__file__).parent / "data" / "official"
VARIANTS = ("lmliif", "lmlte")
DECODERS = {"lmliif": LMLIIFDecoder, "lmlte": LMLTEDecoder, "lmciaosr": LMCiaoSRDecoder}
#: LM-CiaoSR's official code hard-codes 64 encoder channels: its vectors are on LMF's small
#: SwinIR only (a 64-channel EDSR trunk would make the file near 1 MB)
STEMS = {"lmliif": "lmliif", "lmlte": "lmlte", "lmciaosr": "lmciaosr_swinir"}


def vectors(variant: str) -> dict:
    return torch.load(DATA / f"lmf_{variant}_vectors.pt", weights_only=True)


#: (variant, file stem, encoder, output sizes): the EDSR-baseline vectors on a 10 x 12 LR,
#: the SwinIR ones (LMF's SwinIR, a small trunk) on a 12 x 16 LR, a multiple of its window
ENCODER_CASES = [(v, v, "edsr-baseline", [(20, 24), (37, 44), (20, 42), (60, 72)]) for v in VARIANTS] + [
    (v, f"{v}_swinir", "swinir", [(24, 32), (44, 59), (24, 56), (72, 96)]) for v in VARIANTS + ("lmciaosr",)]


# --- parity with the official forward ------------------------------------------------
@pytest.mark.parametrize("variant,stem,encoder,sizes", ENCODER_CASES, ids=[c[1] for c in ENCODER_CASES])
def test_official_checkpoint_matches_the_official_forward(variant, stem, encoder, sizes):
    """The official checkpoint loads through load_model and gives the official outputs at
    x2, x3.7, (x2, x3.5) and x6 (test.py's cell clipping), whole and in chunks of 97, on
    EDSR-baseline and on LMF's SwinIR (its trunk ends in a 64-channel convolution)."""
    vec = vectors(stem)
    ckpt = torch.load(DATA / f"lmf_{stem}.pth", weights_only=True)
    assert [[k, list(v.shape)] for k, v in ckpt["model"]["sd"].items()] == vec["official_keys"]
    model = ciaosr.load_model(DATA / f"lmf_{stem}.pth").eval()
    assert model.spec["name"] == f"{encoder}-{variant}"
    assert model.spec["decoder_args"]["hidden_dim"] == 8 and model.spec["decoder_args"]["depth"] == 3
    assert [tuple(c["size"]) for c in vec["cases"]] == sizes
    assert [c["cell_mult"] for c in vec["cases"]] == [1, 1, 1, 1.5]
    for case in vec["cases"]:
        coord, cell = full_grid(case["size"])
        with torch.no_grad():
            whole = model(vec["lr"], coord, cell)[0]
            enc = model.encode(vec["lr"])
            chunked = model.decode_chunked(enc, coord, cell, chunk=97)[0]
        assert case["pred"].std() > 0.1
        torch.testing.assert_close(whole, case["pred"], atol=1e-5, rtol=0)
        torch.testing.assert_close(chunked, case["pred"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("variant", VARIANTS)
def test_training_forward_matches_the_official_training_path(variant):
    """The official training path (query_rgb, no cell clipping) on a batch of two images at
    their own scales with random queries: each image's modulations from its own cell."""
    train = vectors(variant)["train"]
    model = ciaosr.load_model(DATA / f"lmf_{variant}.pth").train()
    assert not torch.equal(train["cell"][0, 0], train["cell"][1, 0])
    with torch.no_grad():
        pred = model(train["lr"], train["coord"], train["cell"])
    torch.testing.assert_close(pred, train["pred"], atol=1e-5, rtol=0)


OFFICIAL_CONFIGS = {  # decoder arguments of configs/train-lmf/train_<encoder>-<variant>.yaml
    ("edsr-baseline", "lmliif"): {}, ("rdn", "lmliif"): {}, ("swinir", "lmliif"): {"depth": 8},
    ("edsr-baseline", "lmlte"): {}, ("rdn", "lmlte"): {}, ("swinir", "lmlte"): {},
    ("edsr-baseline", "lmciaosr"): {}, ("rdn", "lmciaosr"): {}, ("swinir", "lmciaosr"): {},
}


@pytest.mark.parametrize("encoder,variant", OFFICIAL_CONFIGS)
def test_parameter_counts_match_the_official_code(encoder, variant):
    """Against the official models built from the official configs (in the vectors' run):
    equal on every encoder (LMF's SwinIR with its 180 -> 64 last convolution, the
    default here), but LIIF's EDSR holds 24 more, its two unused MeanShift convolutions."""
    official = vectors(STEMS[variant])["params"]
    args = OFFICIAL_CONFIGS[(encoder, variant)]
    decoder = DECODERS[variant](64, **args)
    assert count_parameters(decoder) == official[encoder] - official[f"{encoder} encoder"]
    model = ciaosr.build_model(f"{encoder}-{variant}", None, args)
    shift = 24 if encoder == "edsr-baseline" else 0
    assert count_parameters(model) == official[encoder] - shift


def test_default_sizes_are_the_official_configs():
    vec = vectors("lmliif")["params"]
    with torch.device("meta"):
        assert count_parameters(ciaosr.build_model("edsr-baseline-lmliif")) == vec["edsr-baseline"] - 24 == 1_386_067
        assert count_parameters(ciaosr.build_model("edsr-baseline-lmlte")) == \
            vectors("lmlte")["params"]["edsr-baseline"] - 24 == 1_490_883
        assert count_parameters(ciaosr.build_model("edsr-baseline-lmciaosr")) == \
            vectors("lmciaosr_swinir")["params"]["edsr-baseline"] - 24 == 1_955_414


# --- LM-CiaoSR's own official particulars --------------------------------------------
def _residual(lr: torch.Tensor, coord: torch.Tensor) -> torch.Tensor:
    """The global residual: the bilinear sample (border) of the normalised LR."""
    import torch.nn.functional as F
    return F.grid_sample((lr - 0.5) / 0.5, coord.flip(-1).unsqueeze(1), mode="bilinear", padding_mode="border",
                         align_corners=False)[:, :, 0].permute(0, 2, 1)


def test_lmciaosr_non_local_in_crops_matches_the_official_forward():
    """A 52 x 100 LR (more than 48 x 48 pixels): the official non-local feature is made in
    48-pixel crops (three here, widened by one pixel inside the map), which differs from
    the whole-map feature; ours equals the official one, and so does the prediction."""
    crop = vectors("lmciaosr_swinir")["crop"]
    model = ciaosr.load_model(DATA / "lmf_lmciaosr_swinir.pth").eval()
    with torch.no_grad():
        pred = model(crop["lr"], crop["coord"], crop["cell"])[0]
        enc = model.encode(crop["lr"])
        feat = enc.feat
        whole = model.decoder.cs_attn(feat)
    non_local = enc.prepared["non_local"].view(52, 100, -1).permute(2, 0, 1)
    torch.testing.assert_close(non_local[:, ::4, ::4], crop["non_local_every4"], atol=1e-5, rtol=0)
    assert (whole[0] - non_local).abs().max() > 1e-3  # the crops matter
    torch.testing.assert_close(pred, crop["pred"], atol=1e-5, rtol=0)


def test_lmciaosr_non_local_without_crops_when_a_side_is_short():
    """More than 48 x 48 pixels but a side under 48: the official loops make no crop and
    the feature stays zero (kept, so official checkpoints compute what they computed)."""
    torch.manual_seed(0)
    from ciaosr.decoders.nonlocal_attention import CrossScaleAttention
    attention = CrossScaleAttention(4, tile=None)
    assert torch.equal(cropped_non_local(attention, torch.randn(1, 4, 40, 60)), torch.zeros(1, 4, 40, 60))
    small_map = torch.randn(1, 4, 30, 40)
    assert torch.equal(cropped_non_local(attention, small_map), attention(small_map))


def test_lmciaosr_training_forward_is_the_official_one_plus_the_residual():
    """The official training path (query_rgb, batch of two at their own scales, no cell
    clipping) adds no global residual, its evaluation path does; here both do: the
    training output is the official one plus the bilinear residual. (LMF's SwinIR in eval
    mode: its stochastic depth would make the output random.)"""
    train = vectors("lmciaosr_swinir")["train"]
    model = ciaosr.load_model(DATA / "lmf_lmciaosr_swinir.pth").train()
    model.encoder.eval()
    with torch.no_grad():
        pred = model(train["lr"], train["coord"], train["cell"])
    torch.testing.assert_close(pred - _residual(train["lr"], train["coord"]), train["pred"], atol=1e-5, rtol=0)


# --- detection -----------------------------------------------------------------------
def _bare(variant: str) -> dict:
    return {k: v for k, v in torch.load(DATA / f"lmf_{variant}.pth", weights_only=True)["model"]["sd"].items()}


@pytest.mark.parametrize("variant", VARIANTS)
def test_bare_state_dict_is_detected_as_its_family_only(variant, tmp_path):
    """Without the spec, only the LMF unit claims LMF keys (LIIF and LTE step aside), and
    the file computes what the spec'd one does."""
    sd = _bare(variant)
    dec = {k: v for k, v in sd.items() if not k.startswith("encoder.")}
    assert LIIFDecoder.official_args(dec) is None and LTEDecoder.official_args(dec) is None
    other = LMLTEDecoder if variant == "lmliif" else LMLIIFDecoder
    assert other.official_args(dec) is None
    torch.save(sd, tmp_path / "bare.pth")
    bare = ciaosr.load_model(tmp_path / "bare.pth").eval()
    full = ciaosr.load_model(DATA / f"lmf_{variant}.pth").eval()
    assert bare.spec == full.spec
    coord, cell = full_grid((23, 31))
    lr = vectors(variant)["lr"]
    with torch.no_grad():
        assert torch.equal(bare(lr, coord, cell), full(lr, coord, cell))


def test_lmciaosr_keys_are_its_family_only(tmp_path):
    """CiaoSR, LM-LIIF and LM-LTE step aside for LM-CiaoSR's keys, LM-CiaoSR for theirs;
    a bare state dict loads as the spec'd file does."""
    sd = _bare("lmciaosr_swinir")
    dec = {k: v for k, v in sd.items() if not k.startswith("encoder.")}
    assert all(cls.official_args(dec) is None for cls in (CiaoSRDecoder, LMLIIFDecoder, LMLTEDecoder, LIIFDecoder))
    assert LMCiaoSRDecoder.official_args(dec)["hidden_dim"] == 8
    for other in ("lmliif", "lmlte"):
        assert LMCiaoSRDecoder.official_args({k: v for k, v in _bare(other).items()
                                               if not k.startswith("encoder.")}) is None
    ciaosr_keys = {k[len("decoder."):]: v for k, v in ciaosr.build_model("edsr-baseline-ciaosr").state_dict().items()
                   if k.startswith("decoder.")}
    assert LMCiaoSRDecoder.official_args(ciaosr_keys) is None and CiaoSRDecoder.official_args(ciaosr_keys)
    torch.save(sd, tmp_path / "bare.pth")
    bare = ciaosr.load_model(tmp_path / "bare.pth").eval()
    assert bare.spec == ciaosr.load_model(DATA / "lmf_lmciaosr_swinir.pth").spec


def test_lmciaosr_keys_claimed_by_two_families_are_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(CiaoSRDecoder, "official_args", classmethod(lambda cls, sd, spec=None: {}))
    torch.save(_bare("lmciaosr_swinir"), tmp_path / "both.pth")
    with pytest.raises(CiaosrError, match=r"match several decoder families \((ciaosr, lmciaosr|lmciaosr, ciaosr)\)"):
        ciaosr.load_model(tmp_path / "both.pth")


@pytest.mark.parametrize("key,value,needle", [
    ("local_size", 1, "local_size 1"), ("feat_unfold", False, "feat_unfold False"),
    ("multi_scale", [2, 3], r"multi_scale \[2, 3\]"), ("mod_input", False, "mod_input false")])
def test_lmciaosr_unsupported_official_settings_are_refused(key, value, needle, tmp_path):
    ckpt = torch.load(DATA / "lmf_lmciaosr_swinir.pth", weights_only=True)
    ckpt["model"]["args"][key] = value
    torch.save(ckpt, tmp_path / "odd.pth")
    with pytest.raises(CiaosrError, match=needle):
        ciaosr.load_model(tmp_path / "odd.pth")


def test_keys_matching_two_families_are_an_error(tmp_path, monkeypatch):
    """If two units claim one file, loading names both instead of picking one."""
    monkeypatch.setattr(LIIFDecoder, "official_args", classmethod(lambda cls, sd, spec=None: {}))
    torch.save(_bare("lmliif"), tmp_path / "both.pth")
    with pytest.raises(CiaosrError, match=r"match several decoder families \(.*liif.*lmliif|lmliif.*liif"):
        ciaosr.load_model(tmp_path / "both.pth")


def test_unknown_keys_name_the_families_tried(tmp_path):
    torch.save({"encoder.head.0.weight": torch.zeros(8, 3, 3, 3), "foo.weight": torch.zeros(3)}, tmp_path / "x.pth")
    with pytest.raises(CiaosrError, match=r"cannot detect .*\(tried: .*lmliif.*lmlte"):
        ciaosr.load_model(tmp_path / "x.pth")


@pytest.mark.parametrize("key,needle", [
    (("imnet_spec", "mod_scale"), "mod_scale false"), (("imnet_spec", "mod_shift"), "mod_shift false"),
    (("mod_input",), "mod_input false")])
def test_unsupported_official_settings_are_refused(key, needle, tmp_path):
    ckpt = torch.load(DATA / "lmf_lmliif.pth", weights_only=True)
    args = ckpt["model"]["args"]
    if len(key) == 2:
        args[key[0]]["args"][key[1]] = False
    else:
        args[key[0]] = False
    torch.save(ckpt, tmp_path / "odd.pth")
    with pytest.raises(CiaosrError, match=needle):
        ciaosr.load_model(tmp_path / "odd.pth")


def test_cli_refuses_an_undetectable_checkpoint_in_one_line(tmp_path):
    import subprocess
    import sys
    torch.save({"foo.weight": torch.zeros(3)}, tmp_path / "x.pth")
    from PIL import Image
    Image.new("RGB", (8, 8)).save(tmp_path / "in.png")
    out = subprocess.run([sys.executable, "-m", "ciaosr", "upscale", str(tmp_path / "in.png"), "--model",
                          str(tmp_path / "x.pth"), "--scale", "2", "-o", str(tmp_path / "out.png")],
                         capture_output=True, text=True)
    lines = out.stderr.strip().splitlines()
    assert out.returncode != 0 and "Traceback" not in out.stderr and len(lines) == 1, out.stderr
    assert "cannot detect the model architecture" in lines[0] and "lmliif, lmlte" in lines[0]


# --- the decoders on their own --------------------------------------------------------
def small(variant, **kw):
    base = {"hidden_dim": 8, "depth": 2, "hyper_hidden": (16,)}
    if variant == "lmlte":
        base["lte_dim"] = 12
    if variant == "lmciaosr":
        base.update(prenet_hidden=(8,), key_hidden=(8,), value_hidden=(8,))
    return DECODERS[variant](6, **{**base, **kw})


SWITCHES = [{}, {"local_ensemble": False}, {"cell_decode": False}]
UNIT_CASES = [(v, s) for v in VARIANTS for s in SWITCHES] + [("lmciaosr", {}), ("lmciaosr", {"non_local": False})]


@pytest.mark.parametrize("variant,switch", UNIT_CASES,
                         ids=[f"{v}-{','.join(s) or 'default'}" for v, s in UNIT_CASES])
def test_chunks_in_any_order_and_gradients(variant, switch):
    torch.manual_seed(0)
    dec = small(variant, **switch).eval()
    feat = torch.randn(2, 6, 7, 9)
    coord, cell = full_grid((13, 20), batch=2)
    with torch.no_grad():
        prep = dec.prepare(feat)
        full = dec.query(prep, coord, cell)
        perm = torch.randperm(coord.shape[1])
        permuted = dec.query(prep, coord[:, perm], cell[:, perm])
        parts = torch.cat([dec.query(prep, coord[:, a:a + 50], cell[:, a:a + 50])
                           for a in range(0, coord.shape[1], 50)], dim=1)
    assert full.shape == (2, 260, 3) and not torch.allclose(full[0], full[1])
    torch.testing.assert_close(permuted, full[:, perm], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(parts, full, atol=1e-6, rtol=1e-5)
    dec.train()
    feat.requires_grad_(True)
    dec(feat, coord, cell).square().mean().backward()
    for name, p in dec.named_parameters():
        if name.startswith(("phase.", "imphase.")) and not switch.get("cell_decode", True):
            continue  # unused without cell decoding, as in the official code
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert feat.grad.abs().sum() > 0


@pytest.mark.parametrize("variant", DECODERS)
def test_modulation_table_made_once_per_cell(variant, monkeypatch):
    """Chunks of one cell share one table; a new cell makes a new one; the outputs at
    that cell are the outputs of a fresh prepare."""
    torch.manual_seed(0)
    dec = small(variant).eval()
    made = []
    real = type(dec)._table
    monkeypatch.setattr(type(dec), "_table", lambda self, prep, c: made.append(c) or real(self, prep, c))
    feat = torch.randn(1, 6, 7, 9)
    coord, cell = full_grid((13, 20))
    coord3, cell3 = full_grid((21, 27))
    with torch.no_grad():
        prep = dec.prepare(feat)
        for a in range(0, coord.shape[1], 64):
            dec.query(prep, coord[:, a:a + 64], cell[:, a:a + 64])
        assert len(made) == 1
        again = dec.query(prep, coord3, cell3)
        assert len(made) == 2
        torch.testing.assert_close(again, dec.query(dec.prepare(feat), coord3, cell3), atol=0, rtol=0)


@pytest.mark.parametrize("variant", DECODERS)
def test_cell_clipped_above_the_training_range_in_eval_only(variant):
    torch.manual_seed(0)
    clipped, plain = small(variant).eval(), small(variant, max_train_scale=None).eval()
    plain.load_state_dict(clipped.state_dict())
    feat = torch.randn(1, 6, 7, 9)
    with torch.no_grad():
        for size, same in (((21, 27), True), ((42, 54), False)):
            coord, cell = full_grid(size)
            a, b = clipped(feat, coord, cell), plain(feat, coord, cell)
            assert torch.equal(a, b) == same, size
        clipped.train(), plain.train()
        assert torch.equal(clipped(feat, coord, cell), plain(feat, coord, cell))


def test_training_smoke(tmp_path):
    """The smoke config with an LM-LTE decoder: the loss falls, the export loads and upscales."""
    model = train_smoke(tmp_path, "edsr-baseline-lmlte", "{lte_dim: 32, hyper_hidden: [32]}")
    assert model.spec["decoder_args"]["lte_dim"] == 32


# --- CMSR (ciaosr.inference.cmsr) -------------------------------------------------------
CMSR_STEMS = {"lmliif": "lmf_lmliif", "lmlte": "lmf_lmlte", "lmciaosr": "lmf_lmciaosr_swinir"}


def cmsr_vectors() -> dict:
    return torch.load(DATA / "lmf_cmsr_vectors.pt", weights_only=True)


def _floats(tables: dict) -> dict:
    return {float(s): {float(d): float(t) for d, t in table.items()} for s, table in tables.items()}


@pytest.mark.parametrize("variant", CMSR_STEMS)
def test_cmsr_matches_the_official_cmsr_forward(variant):
    """The official CMSR forward with fixed tables: x6 through the table of 7 (levels x1,
    x2, x4 and x6), and x6.5 past the last table (its x4 level resampled to the output);
    the result differs from the plain forward (CMSR changed pixels)."""
    from ciaosr.inference.cmsr import cmsr_predict
    stem = CMSR_STEMS[variant]
    model = ciaosr.load_model(DATA / f"{stem}.pth").eval()
    lr = torch.load(DATA / f"{stem}_vectors.pt", weights_only=True)["lr"]
    for case in cmsr_vectors()[variant]["cases"]:
        size = tuple(case["size"])
        with torch.no_grad():
            enc = model.encode(lr)
            pred = cmsr_predict(model, enc, size, _floats(case["tables"]))[0]
            plain = model.decode_chunked(enc, *full_grid(size))[0]
        torch.testing.assert_close(pred, case["pred"], atol=1e-5, rtol=0)
        assert (pred - plain).abs().max() > 1e-2, size


@pytest.mark.parametrize("variant", CMSR_STEMS)
def test_cmsr_table_search_matches_the_official_search(variant):
    """update_scale2mean over two images from init_cmsr.py's fresh table, at the MSE
    limit the vector script chose (the first leaving a threshold inside the range)."""
    from ciaosr.inference.cmsr import TABLE_SCALES, update_table
    stem = CMSR_STEMS[variant]
    search = cmsr_vectors()[variant]["search"]
    model = ciaosr.load_model(DATA / f"{stem}.pth").eval()
    table = {float(d): 1.0 for d in TABLE_SCALES if d <= 6}
    with torch.no_grad():
        for lr in search["lrs"]:
            update_table(model, model.encode(lr[None]), tuple(search["size"]), table, search["mse"])
    assert table == search["table"]
    assert any(0 < t < model.decoder.cmsr_search_max for t in table.values())


def test_cmsr_within_the_training_range_is_the_plain_forward():
    from ciaosr.inference.cmsr import cmsr_upsample
    model = ciaosr.load_model(DATA / "lmf_lmliif.pth").eval()
    lr = vectors("lmliif")["lr"]
    tables = _floats(cmsr_vectors()["lmliif"]["cases"][0]["tables"])
    with torch.no_grad():
        assert torch.equal(cmsr_upsample(model, lr, (40, 48), tables), model.upsample(lr, (40, 48)))
        # and a batch goes one image at a time: each equals its own
        two = cmsr_upsample(model, torch.cat([lr, lr.flip(-1)]), (60, 72), tables)
        assert torch.equal(two[1:], cmsr_upsample(model, lr.flip(-1), (60, 72), tables))


def test_cmsr_tables_build_save_and_load(tmp_path):
    """build_tables (init_cmsr.py) on generated HR images: a table for the scale, its
    decode scales those of the official script up to it, thresholds in the search range
    and never higher at a lower decode scale; other scales' tables kept; the file
    round-trips; bad files are one-line errors."""
    from ciaosr.inference.cmsr import build_tables, load_tables, save_tables
    model = ciaosr.load_model(DATA / "lmf_lmlte.pth").train()
    g = torch.Generator().manual_seed(0)
    images = [(torch.rand(3, 61, 73, generator=g) * 255).to(torch.uint8) for _ in range(2)]
    tables = build_tables(model, images, 6, mse=1e-3, tables={12.0: {1.0: 0.2, 12.0: 1.0}})
    assert model.training  # given back as it came
    assert list(tables) == [6.0, 12.0] and tables[12.0] == {1.0: 0.2, 12.0: 1.0}
    six = tables[6.0]
    assert list(six)[:6] == [1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
    values = list(six.values())
    assert all(0 <= v <= 1 for v in values) and values[:5] == sorted(values[:5]) and min(values) < 1
    save_tables(tables, tmp_path / "t.yaml")
    assert load_tables(tmp_path / "t.yaml") == tables
    for text, needle in (("[1, 2]", "expected"), ("{}", "no thresholds"), (":", "not YAML")):
        (tmp_path / "bad.yaml").write_text(text)
        with pytest.raises(CiaosrError, match=needle):
            load_tables(tmp_path / "bad.yaml")
    with pytest.raises(CiaosrError, match="cannot|No such"):
        load_tables(tmp_path / "missing.yaml")


def test_cmsr_refuses_other_decoders():
    from ciaosr.inference.cmsr import cmsr_upsample
    model = ciaosr.build_model("edsr-baseline-liif", {"num_blocks": 1, "mid_channels": 8}, {"hidden": [8]})
    with pytest.raises(CiaosrError, match="CMSR works with LMF's decoders"):
        cmsr_upsample(model, torch.rand(1, 3, 8, 8), (64, 64), {6.0: {1.0: 0.1}})


def test_cmsr_from_the_command_line(tmp_path, capsys):
    """`ciaosr cmsr-table` builds a table file from a folder of HR images; `ciaosr upscale
    --cmsr` renders with it, as cmsr_upsample does; misuse is one line each."""
    import numpy as np
    from PIL import Image

    from ciaosr.cli.main import main
    from ciaosr.inference.cmsr import cmsr_upsample, load_tables
    model_file = str(DATA / "lmf_lmlte.pth")
    hr = tmp_path / "hr"
    hr.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (62, 73, 3), dtype=np.uint8)).save(hr / f"{i}.png")
    table_file = tmp_path / "tables" / "t.yaml"  # its missing folder is made
    assert main(["cmsr-table", str(hr), "--model", model_file, "--scale", "6", "--mse", "1e-3",
                 "-o", str(table_file), "--device", "cpu"]) == 0
    assert "CMSR table x6 from 2 image(s)" in capsys.readouterr().out
    tables = load_tables(table_file)
    assert list(tables[6.0])[:6] == [1.0, 1.5, 2.0, 3.0, 4.0, 6.0]

    lr = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    Image.fromarray(lr).save(tmp_path / "in.png")
    out = tmp_path / "out.png"
    assert main(["upscale", str(tmp_path / "in.png"), "--model", model_file, "--scale", "7", "--cmsr",
                 str(table_file), "--threads", "1", "-o", str(out)]) == 0
    got = np.asarray(Image.open(out)).astype(np.int64)
    model = ciaosr.load_model(model_file).eval()
    with torch.no_grad():
        want = cmsr_upsample(model, torch.from_numpy(lr).permute(2, 0, 1)[None].float() / 255, (84, 70), tables)
    want = (want[0].permute(1, 2, 0).numpy() * 255).round().astype(np.int64)
    assert got.shape == (84, 70, 3) and np.abs(got - want).max() <= 1

    def error(argv):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
        return err

    base = ["upscale", str(tmp_path / "in.png"), "--scale", "7", "-o", str(tmp_path / "x.png")]
    assert "leave out --tile" in error([*base, "--model", model_file, "--cmsr", str(table_file), "--tile", "16"])
    assert "CMSR works with LMF's decoders" in error([*base, "--cmsr", str(table_file)])
    (tmp_path / "bad.yaml").write_text("[1]")
    assert "expected {scale:" in error([*base, "--model", model_file, "--cmsr", str(tmp_path / "bad.yaml")])
    assert "--scale must be above 4" in error(["cmsr-table", str(hr), "--model", model_file, "--scale", "3",
                                               "-o", str(table_file)])
    assert "--max-images must be positive" in error(["cmsr-table", str(hr), "--model", model_file, "--scale", "6",
                                                     "-o", str(table_file), "--max-images", "0"])
    assert "not a folder of images" in error(["cmsr-table", str(tmp_path / "none"), "--model", model_file,
                                              "--scale", "6", "-o", str(table_file)])
    assert "cannot create output folder" in error(["cmsr-table", str(hr), "--model", model_file, "--scale", "6",
                                                   "-o", str(hr / "0.png" / "sub" / "t.yaml")])  # below a file

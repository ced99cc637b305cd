"""CLIT's decoder: parity with the official test and training paths from an official-format
checkpoint, the cascade's split of the scale, detection among the families, parameter
counts, the command line.

Vectors: ``tests/data/official/clit.pth`` (an official-format checkpoint of a small
three-stage model) and ``clit_vectors.pt`` (inputs, stage grids, the official outputs, the
official parameter counts of the full-size configurations), made by
``benchmarks/official/make_clit_vectors.py`` with the official CLIT code in a throwaway
environment (its docstring and the file's ``note`` say how).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import ciaosr
from ciaosr.decoders.clit import CLITDecoder, cascade_scales
from ciaosr.errors import CiaosrError
from ciaosr.models.factory import count_parameters
from ciaosr.models.registry import decoders

from test_decoders_lte_metasr import full_grid, train_smoke

DATA = Path(__file__).parent / "data" / "official"
VECTORS = torch.load(DATA / "clit_vectors.pt", weights_only=True)


def official_model():
    return ciaosr.load_model(DATA / "clit.pth")


def residual(lr: torch.Tensor, coord: torch.Tensor) -> torch.Tensor:
    """The bilinear residual of the normalised input the model adds (border padding)."""
    out = F.grid_sample((lr - 0.5) / 0.5, coord.flip(-1).unsqueeze(1), mode="bilinear", padding_mode="border",
                        align_corners=False)
    return out[:, :, 0].permute(0, 2, 1)


# --- parity with the official code ----------------------------------------------------
CASES = [(c["size"], len(c["grids"])) for c in VECTORS["cases"]]


@pytest.mark.parametrize("index", range(len(CASES)), ids=[f"{s[0]}x{s[1]}-{n}stage" for s, n in CASES])
def test_official_checkpoint_matches_the_official_test_path(index):
    """x2, x3.7, x2 by x3.5, x6 (two stages) and x18 (three): the official chop_forward on
    the test wrapper's stage grids, whole and in chunks of 97."""
    case = VECTORS["cases"][index]
    ckpt = torch.load(DATA / "clit.pth", weights_only=True)
    assert [[k, list(v.shape)] for k, v in ckpt["model"]["sd"].items()] == VECTORS["official_keys"]
    model = official_model().eval()
    assert model.spec["name"] == "edsr-baseline-clit"
    assert {k: model.spec["decoder_args"][k] for k in ("dim", "heads", "radius", "stages", "act", "pos_scale")} == \
        {"dim": 16, "heads": 4, "radius": 3, "stages": 3, "act": "gelu", "pos_scale": 10.0}
    lr, size = case["lr"], tuple(case["size"])
    coord, cell = full_grid(size)
    assert model.decoder.stage_grids(lr.shape[-2:], cell[0, 0].tolist()) == [tuple(g) for g in case["grids"][:-1]]
    with torch.no_grad():
        whole = model(lr, coord, cell)[0]
        chunked = model.decode_chunked(model.encode(lr), coord, cell, chunk=97)[0]
    assert (case["pred"] - residual(lr, coord)[0]).std() > 0.03  # the decoder's own part counts
    torch.testing.assert_close(whole, case["pred"], atol=1e-5, rtol=0)
    torch.testing.assert_close(chunked, case["pred"], atol=1e-5, rtol=0)


def test_training_forward_matches_the_official_training_path(monkeypatch):
    """The official train.py forward: three stages on the grids of drawn per-stage factors
    (not the test split), random queries, a batch of two; its last stage is what the loss
    reads. Every stage's parameters get a gradient."""
    train = VECTORS["train"]
    grids = [tuple(g) for g in train["grids"]]
    model = official_model().train()
    decoder = model.decoder
    assert decoder.stage_grids(train["lr"].shape[-2:], train["cell"][0].tolist()) != grids[:-1]
    monkeypatch.setattr(decoder, "query", lambda prep, coord, cell: decoder.cascade(prep, coord, cell, grids[:-1]))
    cell = train["cell"].unsqueeze(1).expand(-1, train["coord"].shape[1], -1)
    pred = model(train["lr"], train["coord"], cell)
    torch.testing.assert_close(pred.detach(), train["pred"], atol=1e-5, rtol=0)
    pred.square().mean().backward()
    for name, p in decoder.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


# --- the cascade ----------------------------------------------------------------------
@pytest.mark.parametrize("scale,split", [(2.0, [2.0]), (4.0, [4.0]), (6.0, [4.0, 1.5]), (16.0, [4.0, 4.0]),
                                         (18.0, [4.0, 4.0, 1.125]), (4.00001, [4.00001])])
def test_scale_split_is_the_official_sample_system_scale(scale, split):
    assert cascade_scales(scale, 4.0) == pytest.approx(split, rel=1e-12)


def test_asymmetric_scales_split_per_axis():
    """Each axis is split on its own; the shorter split stays at its output size."""
    dec = CLITDecoder(8, dim=8, heads=2, mlp_hidden=(8,), pos_dims=8)
    assert dec.stage_grids((10, 12), (2 / 20, 2 / 100)) == [(20, 48)]
    assert dec.stage_grids((10, 12), (2 / 100, 2 / 20)) == [(40, 20)]
    assert dec.stage_grids((10, 12), (2 / 200, 2 / 240)) == [(40, 48), (160, 192)]


def test_scales_beyond_the_stages_are_one_line_errors():
    model = official_model().eval()
    lr = VECTORS["cases"][0]["lr"]
    with pytest.raises(CiaosrError, match=r"3 stage\(s\) decodes scales up to x64; x70 needs 4"):
        model.upsample(lr, (700, 840))
    one = CLITDecoder(8, dim=8, heads=2, stages=1, mlp_hidden=(8,), pos_dims=8)
    with pytest.raises(CiaosrError, match=r"up to x4; x6 needs 2"):
        one.stage_grids((10, 12), (2 / 60, 2 / 72))


def test_chunks_any_order_and_images_with_their_own_scales():
    """Chunks in any order give the whole result; a batch whose images have different
    cells (as in training) gives each image's own result; later-stage maps are made once
    per cell."""
    torch.manual_seed(0)
    dec = CLITDecoder(6, dim=8, heads=2, radius=2, mlp_hidden=(8,), pos_dims=8).eval()
    feat = torch.randn(2, 6, 5, 7)
    coord, cell = full_grid((30, 42), batch=2)  # x6: two stages
    with torch.no_grad():
        prep = dec.prepare(feat)
        full = dec.query(prep, coord, cell)
        perm = torch.randperm(coord.shape[1])
        permuted = dec.query(prep, coord[:, perm], cell[:, perm])
        made = prep["later"]._table
        parts = torch.cat([dec.query(prep, coord[:, a:a + 50], cell[:, a:a + 50])
                           for a in range(0, coord.shape[1], 50)], dim=1)
        assert prep["later"]._table is made
        torch.testing.assert_close(permuted, full[:, perm], atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(parts, full, atol=1e-6, rtol=1e-5)
        small_coord, small_cell = full_grid((10, 14))
        n = small_coord.shape[1]
        mixed = dec.query(prep, coord[:, :n].clone(), torch.cat([cell[:1, :n], small_cell]))
        alone = dec.query(dec.prepare(feat[1:]), coord[1:, :n], small_cell)
        torch.testing.assert_close(mixed[0], full[0, :n], atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(mixed[1], alone[0], atol=1e-6, rtol=1e-5)


# --- parameter counts -----------------------------------------------------------------
COUNTS = [(enc, variant, stages) for enc in ("edsr-baseline", "rdn", "swinir")
          for variant, stages in (("lit", 1), ("clit2", 2), ("clit3", 3))]


@pytest.mark.parametrize("encoder,variant,stages", COUNTS, ids=[f"{e}-{v}" for e, v, _ in COUNTS])
def test_parameter_counts_match_the_official_configs(encoder, variant, stages):
    """Against the official models of configs/train/train_<encoder>_<variant>.yaml: equal
    decoders on every encoder; whole models equal on RDN and SwinIR (CLIT's SwinIR ends in a
    180 -> 64 convolution, the default here), LIIF's EDSR-baseline holds 24 unused
    MeanShift values more."""
    official = VECTORS["params"]
    key = f"{encoder} {variant}"
    try:  # no memory where the modules allow it (SwinIR's do not)
        with torch.device("meta"):
            model = ciaosr.build_model(f"{encoder}-clit", None, {"stages": stages})
    except NotImplementedError:
        model = ciaosr.build_model(f"{encoder}-clit", None, {"stages": stages})
    assert count_parameters(model.decoder) == official[key] - official[f"{key} encoder"]
    assert count_parameters(model) == official[key] - (24 if encoder == "edsr-baseline" else 0)


def test_default_size_is_the_official_three_stage_config():
    with torch.device("meta"):
        model = ciaosr.build_model("edsr-baseline-clit")
    assert count_parameters(model) == VECTORS["params"]["edsr-baseline clit3"] - 24 == 16_909_905


# --- detection ------------------------------------------------------------------------
def _bare() -> dict:
    return torch.load(DATA / "clit.pth", weights_only=True)["model"]["sd"]


def test_bare_state_dict_is_detected_as_clit_only(tmp_path):
    """No other family claims CLIT's keys; without the spec the official configurations'
    settings are assumed, which these are."""
    dec = {k: v for k, v in _bare().items() if not k.startswith("encoder.")}
    claims = [name for name, entry in decoders().items() if entry.cls.official_args(dec, {}) is not None]
    assert claims == ["clit"]
    torch.save(_bare(), tmp_path / "bare.pth")
    bare, full = ciaosr.load_model(tmp_path / "bare.pth").eval(), official_model().eval()
    assert bare.spec == full.spec
    lr = VECTORS["cases"][0]["lr"]
    coord, cell = full_grid((23, 31))
    with torch.no_grad():
        assert torch.equal(bare(lr, coord, cell), full(lr, coord, cell))


@pytest.mark.parametrize("stem", ["lmf_lmliif", "lmf_lmlte", "srno", "ope"])
def test_other_families_files_are_not_clit(stem):
    sd = torch.load(DATA / f"{stem}.pth", weights_only=True)["model"]["sd"]
    dec = {k: v for k, v in sd.items() if not k.startswith(("encoder.", "srnet."))}
    assert CLITDecoder.official_args(dec, {}) is None


def test_keys_matching_two_families_are_an_error(tmp_path, monkeypatch):
    from ciaosr.decoders.liif import LIIFDecoder

    monkeypatch.setattr(LIIFDecoder, "official_args", classmethod(lambda cls, sd, spec=None: {}))
    torch.save(_bare(), tmp_path / "both.pth")
    with pytest.raises(CiaosrError, match=r"match several decoder families \((.*clit.*liif|.*liif.*clit)"):
        ciaosr.load_model(tmp_path / "both.pth")


@pytest.mark.parametrize("edit,needle", [
    (lambda a: a.update(local_attn=False), "local_attn false"),
    (lambda a: a["pb_spec"]["args"].update(posenc_type="learn"), "posenc_type 'learn'")])
def test_unsupported_official_settings_are_refused(edit, needle, tmp_path):
    ckpt = torch.load(DATA / "clit.pth", weights_only=True)
    edit(ckpt["model"]["args"])
    torch.save(ckpt, tmp_path / "odd.pth")
    with pytest.raises(CiaosrError, match=needle):
        ciaosr.load_model(tmp_path / "odd.pth")


def test_unequal_stage_parts_are_refused(tmp_path):
    sd = {k: v for k, v in _bare().items() if not k.startswith("imnets.2.")}
    torch.save(sd, tmp_path / "odd.pth")
    with pytest.raises(CiaosrError, match="3 convolution sets and 2 MLPs"):
        ciaosr.load_model(tmp_path / "odd.pth")


# --- end to end -----------------------------------------------------------------------
def test_models_list_and_cli_upscale(tmp_path):
    """``ciaosr models`` lists CLIT on its three encoders only; a random-weight CLIT saved
    from the factory upscales by x3.7 and, tiled, by x6 (two stages) from the command line."""
    from PIL import Image

    from ciaosr.checkpoints.native import save_checkpoint

    listed = subprocess.run([sys.executable, "-m", "ciaosr", "models"], capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    names = {line.split()[0] for line in listed.stdout.splitlines()[1:] if line.strip()}
    assert {n for n in names if n.endswith("-clit")} == {"edsr-baseline-clit", "rdn-clit", "swinir-clit"}
    torch.manual_seed(0)
    model = ciaosr.build_model("edsr-baseline-clit", {"num_blocks": 1, "mid_channels": 8},
                               {"dim": 8, "heads": 2, "mlp_hidden": [8], "pos_dims": 8})
    save_checkpoint(model, tmp_path / "clit.safetensors")
    Image.fromarray((torch.rand(15, 20, 3) * 255).byte().numpy()).save(tmp_path / "in.png")
    for scale, size, extra in (("3.7", (74, 56), []), ("6", (120, 90), ["--tile", "8"])):
        out = tmp_path / f"out{scale}.png"
        run = subprocess.run([sys.executable, "-m", "ciaosr", "upscale", str(tmp_path / "in.png"), "--model",
                              str(tmp_path / "clit.safetensors"), "--scale", scale, "-o", str(out), *extra],
                             capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        assert Image.open(out).size == size


def test_training_smoke(tmp_path):
    """The smoke config with a small CLIT decoder: the loss falls, the export loads and upscales."""
    model = train_smoke(tmp_path, "edsr-baseline-clit", "{dim: 16, heads: 4, mlp_hidden: [32], pos_dims: 16}")
    assert model.spec["decoder_args"]["dim"] == 16

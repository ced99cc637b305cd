"""OPE-SR's parameter-free decoder: parity with the official forward from an
official-format checkpoint, the encoders it runs on, parameter counts.

Vectors: ``tests/data/official/ope.pth`` (an official-format checkpoint of a small model)
and ``ope_vectors.pt`` (input, official outputs, official parameter counts), made by
``benchmarks/official/make_ope_vectors.py`` with the official OPE-SR code in a throwaway
environment (its docstring and the file's ``note`` say how).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import ciaosr
from ciaosr.decoders.ope import OPEDecoder, ope_basis
from ciaosr.errors import CiaosrError
from ciaosr.models.factory import count_parameters
from ciaosr.models.registry import list_models

from test_decoders_lte_metasr import full_grid, train_smoke

DATA = Path(__file__).parent / "data" / "official"
VEC = torch.load(DATA / "ope_vectors.pt", weights_only=True)


def test_official_checkpoint_matches_the_official_forward():
    """x2, x3.7 and (x2, x3.5), whole and in chunks of 97; the encoder of OPE's file
    (``srnet``, an ``adaptive-edsr-baseline``) is an EDSR-baseline of 27 channels."""
    ckpt = torch.load(DATA / "ope.pth", weights_only=True)
    assert [[k, list(v.shape)] for k, v in ckpt["model"]["sd"].items()] == VEC["official_keys"]
    model = ciaosr.load_model(DATA / "ope.pth").eval()
    assert model.spec["name"] == "edsr-baseline-ope" and model.spec["decoder_args"] == {"max_freq": 1}
    assert model.spec["encoder_args"]["mid_channels"] == 27 and model.spec["encoder_args"]["res_scale"] == 1.0
    for case in VEC["cases"]:
        coord, cell = full_grid(case["size"])
        with torch.no_grad():
            whole = model(VEC["lr"], coord, cell)[0]
            chunked = model.decode_chunked(model.encode(VEC["lr"]), coord, cell, chunk=97)[0]
        assert case["pred"].std() > 0.5
        torch.testing.assert_close(whole, case["pred"], atol=1e-5, rtol=0)
        torch.testing.assert_close(chunked, case["pred"], atol=1e-5, rtol=0)


def test_parameter_counts_match_the_official_code():
    """The official configurations (max_freq 3 on 147 channels); the decoder has none.
    LIIF's EDSR code holds 24 more (its unused MeanShift convolutions); OPE's RDN has
    G0 = 147 with growth 64."""
    with torch.device("meta"):
        edsr, rdn = ciaosr.build_model("edsr-baseline-ope"), ciaosr.build_model("rdn-ope")
    assert count_parameters(edsr) == VEC["params"]["edsr"] - 24 == 6_426_840
    assert count_parameters(rdn) == VEC["params"]["rdn"] == 29_652_863
    assert count_parameters(edsr.decoder) == 0
    assert rdn.spec["encoder_args"] == {"mid_channels": 147} and rdn.encoder.channel_growth == 64


def test_encoders_it_runs_on():
    names = [n for n in list_models() if n.endswith("-ope")]
    assert sorted(names) == ["edsr-baseline-ope", "edsr-ope", "rdn-ope"]
    with pytest.raises(CiaosrError, match="the ope decoder runs on edsr-baseline, edsr, rdn only"):
        ciaosr.build_model("swinir-ope")
    with pytest.raises(CiaosrError, match="reads 3 x 7\\^2 = 147 encoder channels, the encoder gives 64"):
        ciaosr.build_model("edsr-baseline-ope", {"mid_channels": 64})


def test_basis_is_the_papers_orthogonal_series():
    """[1, sqrt2 cos(k w x), sqrt2 sin(k w x)]: orthonormal over a period of w x."""
    x = (torch.arange(4000, dtype=torch.float64) + 0.5) / 4000 * 4 - 2  # w x covers [-pi, pi)
    basis = ope_basis(x, 3, math.pi / 2)
    gram = basis.t() @ basis / len(x)
    torch.testing.assert_close(gram, torch.eye(7, dtype=torch.float64), atol=1e-9, rtol=0)


def test_a_spec_less_or_adapt_file_is_refused(tmp_path):
    sd = torch.load(DATA / "ope.pth", weights_only=True)["model"]["sd"]
    torch.save(sd, tmp_path / "bare.pth")
    with pytest.raises(CiaosrError, match="cannot detect the model architecture"):
        ciaosr.load_model(tmp_path / "bare.pth")
    with pytest.raises(CiaosrError, match="OPE-net-adapt"):
        OPEDecoder.official_args({"adapt_R.weight": torch.zeros(1)}, {"max_freq": 3})


def test_training_smoke(tmp_path):
    """Only the encoder learns (the smoke config's 16-channel EDSR-baseline is replaced by
    27 channels: max_freq 1)."""
    model = train_smoke(tmp_path, "edsr-baseline-ope", "{max_freq: 1}", "{mid_channels: 27, num_blocks: 2}")
    assert model.spec["decoder_args"] == {"max_freq": 1}


def test_a_wide_edsr_the_spec_calls_baseline_keeps_its_res_scale(tmp_path):
    """OPE's 147-channel ``adaptive-edsr-baseline`` has res_scale 1 (wider EDSRs of
    unknown origin are taken as EDSR's 0.1): the spec's name decides, and the model is
    named edsr-baseline."""
    torch.manual_seed(0)
    model = ciaosr.build_model("edsr-baseline-ope", {"num_blocks": 1}).eval()
    names = {"encoder.conv_first.": "srnet.head.0.", "encoder.conv_after_body.": "srnet.body.1.",
             "encoder.body.0.conv1.": "srnet.body.0.body.0.", "encoder.body.0.conv2.": "srnet.body.0.body.2."}
    sd = {}
    for k, v in model.state_dict().items():
        prefix = next(p for p in names if k.startswith(p))
        sd[names[prefix] + k[len(prefix):]] = v
    spec = {"name": "OPE-net", "args": {"max_freq": 3, "srnet_spec": {"name": "adaptive-edsr-baseline",
                                                                      "args": {"n_feats": 147, "n_resblocks": 1}}}}
    torch.save({"model": {**spec, "sd": sd}}, tmp_path / "wide.pth")
    loaded = ciaosr.load_model(tmp_path / "wide.pth").eval()
    assert loaded.spec["name"] == "edsr-baseline-ope" and loaded.spec["encoder_args"]["res_scale"] == 1.0
    lr = torch.rand(1, 3, 6, 7)
    coord, cell = full_grid((13, 15))
    with torch.no_grad():
        assert torch.equal(loaded(lr, coord, cell), model(lr, coord, cell))


@pytest.mark.slow  # twenty seconds of export; .ci/run runs it
def test_onnx_export_matches_torch(tmp_path):
    """OPE's query graph (its only table, the coefficients) through onnxruntime, whole and
    tiled, equals the torch model; LMF's and SRNO's decoders are refused in one line (their
    tables depend on the cell, their attention on all the queries)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from ciaosr.inference.upscale import upscale_tensor
    from ciaosr.onnx.export import export_onnx
    from ciaosr.onnx.runtime import OnnxModel

    torch.manual_seed(0)
    model = ciaosr.build_model("edsr-baseline-ope", {"mid_channels": 27, "num_blocks": 1}, {"max_freq": 1}).eval()
    export_onnx(model, tmp_path / "ope.onnx")
    onnx_model = OnnxModel(tmp_path / "ope.onnx")
    lr = torch.rand(1, 3, 21, 26, generator=torch.Generator().manual_seed(1))
    for size, tile in (((63, 78), None), ((73, 52), None), ((48, 60), 12)):
        ref = upscale_tensor(lr, size, model, device=torch.device("cpu"), tile=tile)
        out = upscale_tensor(lr, size, onnx_model, device=torch.device("cpu"), tile=tile)
        assert out.shape == ref.shape and float((out - ref).abs().max()) <= 1e-5
    for name, args in (("edsr-baseline-lmliif", {"hidden_dim": 8, "depth": 2, "hyper_hidden": [8]}),
                       ("edsr-baseline-lmlte", {"lte_dim": 8, "hidden_dim": 8, "depth": 2, "hyper_hidden": [8]}),
                       ("edsr-baseline-srno", {"width": 8, "heads": 2, "hidden": 8})):
        other = ciaosr.build_model(name, {"mid_channels": 8, "num_blocks": 1}, args)
        with pytest.raises(CiaosrError, match=f"{name} cannot be exported to ONNX: its"):
            export_onnx(other, tmp_path / "no.onnx")
    assert not (tmp_path / "no.onnx").exists()

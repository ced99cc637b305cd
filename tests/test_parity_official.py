"""Official checkpoints load through ``load_model`` and reproduce the official outputs.

The vectors in shared/parity/ come from the official CiaoSR and LIIF code (FORMAT.md
there). Tolerance: 1e-5 max abs difference in float32.
"""

from __future__ import annotations

import pytest
import torch

import ciaosr
from ciaosr.checkpoints.loader import load_checkpoint_file

TOL = 1e-5
CIAOSR_FILES = ["ciaosr_edsr_seed0.pt", "ciaosr_rdn_small_seed0.pt", "ciaosr_swinir_small_seed0.pt"]
EXPECTED_NAME = {"edsr": "edsr-baseline-ciaosr", "rdn_small": "rdn-ciaosr", "swinir_small": "swinir-ciaosr"}


def _official_layout(tmp_path, data, wrap: bool):
    """Write the state dict as the official mmediting checkpoint (wrapped, prefixed) or bare."""
    sd = data["state_dict"]
    obj = {"meta": {"mmedit_version": "0.11"}, "state_dict": {f"generator.{k}": v for k, v in sd.items()}} if wrap else sd
    path = tmp_path / ("wrapped.pth" if wrap else "bare.pth")
    torch.save(obj, path)
    return path


@pytest.mark.parametrize("fname", CIAOSR_FILES)
@pytest.mark.parametrize("wrap", [True, False], ids=["mmedit-wrapper", "bare"])
def test_ciaosr_official_parity(shared, tmp_path, fname, wrap):
    data = torch.load(shared(f"parity/{fname}"), weights_only=True)
    model = ciaosr.load_model(_official_layout(tmp_path, data, wrap))
    assert model.spec["name"] == EXPECTED_NAME[data["meta"]["variant"]]
    with torch.no_grad():
        feat = model.encoder(data["lq_norm"])
        assert (feat - data["feat"]).abs().max().item() <= TOL
        nl = model.decoder.cs_attn(data["feat"])
        assert (nl - data["nonlocal_feat"]).abs().max().item() <= TOL
        for case in data["cases"]:
            lq = data["lq"] if case["kind"] == "full" else case["lq"]
            enc = model.encode(lq)
            pred = model.decode_chunked(enc, case["coord"], case["cell"], chunk=30000)
            assert pred.shape == case["pred"].shape
            assert (pred - case["pred"]).abs().max().item() <= TOL, case["scale"]
            sr = model.to_image(pred).clamp(0, 1)
            if case["kind"] == "full":
                th, tw = case["target_size"]
                sr = sr.view(1, th, tw, 3).permute(0, 3, 1, 2)
            else:  # batch of two images, each with its own scale
                assert (enc.feat - case["feat"]).abs().max().item() <= TOL
                nl = model.decoder.cs_attn(case["feat"])
                assert (nl - case["nonlocal_feat"]).abs().max().item() <= TOL
            assert (sr - case["sr"]).abs().max().item() <= TOL


@pytest.mark.parametrize("fname", CIAOSR_FILES)
def test_ciaosr_chunked_decoding_matches_single_pass(shared, fname):
    data = torch.load(shared(f"parity/{fname}"), weights_only=True)
    model = load_checkpoint_file_from_dict(data["state_dict"], fname)
    case = data["cases"][1]
    with torch.no_grad():
        enc = model.encode(data["lq"])
        whole = model.decode(enc, case["coord"], case["cell"])
        chunked = model.decode_chunked(enc, case["coord"], case["cell"], chunk=777)
    assert torch.allclose(whole, chunked, atol=1e-6)


def load_checkpoint_file_from_dict(sd, source):
    from ciaosr.checkpoints.native import load_weights
    from ciaosr.checkpoints.official import convert_official

    name, enc_args, dec_args, ours = convert_official(sd, source)
    model = ciaosr.build_model(name, enc_args, dec_args)
    load_weights(model, ours, source)
    return model.eval()


def test_liif_official_checkpoint_parity(shared):
    ckpt = shared("weights/liif-edsr-baseline/edsr-baseline-liif.pth")
    data = torch.load(shared("parity/liif_edsr_official_butterfly.pt"), weights_only=True)
    model = load_checkpoint_file(ckpt).eval()
    assert model.spec["name"] == "edsr-baseline-liif"
    with torch.no_grad():
        enc = model.encode(data["inp"])
        for case in data["cases"]:
            pred = model.to_image(model.decode_chunked(enc, case["coord"], case["cell"], 30000)).clamp(0, 1)
            assert (pred - case["pred"]).abs().max().item() <= TOL, case["name"]


def test_shipped_liif_equals_official(shared):
    """The safetensors copy that ships in the package is the official checkpoint."""
    official = load_checkpoint_file(shared("weights/liif-edsr-baseline/edsr-baseline-liif.pth"))
    packaged = ciaosr.load_model("edsr-baseline-liif")
    a, b = official.state_dict(), packaged.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_liif_psnr_on_butterfly(shared):
    data = torch.load(shared("parity/liif_edsr_official_butterfly.pt"), weights_only=True)
    model = ciaosr.load_model("edsr-baseline-liif")
    sr = model.upsample(data["inp"], (256, 256))
    diff = sr - data["hr"].float() / 255
    y = (diff * torch.tensor([65.738, 129.057, 25.064]).view(1, 3, 1, 1) / 256).sum(1)[..., 4:-4, 4:-4]
    psnr = -10 * torch.log10(y.pow(2).mean()).item()
    assert abs(psnr - data["cases"][0]["psnr_benchmark_x4"]) < 1e-3

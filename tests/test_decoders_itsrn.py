"""The ITSRN decoder: parity with the official code, official checkpoints and their
detection, parameter counts, training (the checks shared with the other decoders:
test_decoders_lte_metasr.py).

Parity vectors: ``tests/data/itsrn_parity.json``, made by running the official ITSRN
forward (codyshen0000/ITSRN, with LIIF's EDSR-baseline as its encoder) in a throwaway
environment under /tmp, never part of the project, on a 10 x 12 crop of Set5's butterfly
(stored with them); its ``note`` says exactly how. The
weights are not stored: both sides draw them from one seeded generator, tensor by tensor
in the official parameter order (``official_order_init`` below, the recipe of the note),
which is also ours (checked against the stored official key list).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import ciaosr
from ciaosr.decoders.itsrn import ITSRNDecoder
from ciaosr.decoders.liif import LIIFDecoder
from ciaosr.decoders.reference import itsrn_query, reference_model
from ciaosr.errors import CiaosrError
from ciaosr.geometry import make_cell, make_coord
from ciaosr.models.factory import count_parameters

from conftest import require_shared
from test_decoders_lte_metasr import SCALES, C, H, W, grid, small_itsrn, train_smoke

PARITY = json.loads((Path(__file__).parent / "data" / "itsrn_parity.json").read_text())
OFFICIAL_SPEC = {  # the official configs/train/train_itnsr.yaml model, EDSR-baseline encoder
    "name": "ITNSR",
    "args": {"feat_unfold": True, "local_ensemble": True, "scale_token": True,
             "encoder_spec": {"name": "edsr-baseline", "args": {"no_upsampling": True}},
             "imnet_spec": {"name": "mlp", "args": {"hidden_list": [256, 256, 256, 256], "act": "gelu"}}},
}

def official_order_init(model: nn.Module, seed: int = 0) -> None:
    """The parity note's weights: every parameter in order from one generator; weights
    N(0, g^2 / fan_in) (g = 0.7 for convolutions, 1 for linear layers), biases N(0, 0.1^2)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                gain = 0.7 if p.dim() == 4 else 1.0
                p.copy_(torch.randn(p.shape, generator=g) * (gain / math.sqrt(p[0].numel())))
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def to_official_layout(sd: dict) -> dict:
    """Our edsr-baseline-itsrn state dict in the official names (LIIF's EDSR, the decoder's
    keys at the top level), with LIIF EDSR's two unused MeanShift convolutions."""
    out = {"encoder.sub_mean.weight": torch.eye(3).view(3, 3, 1, 1), "encoder.sub_mean.bias": torch.zeros(3),
           "encoder.add_mean.weight": torch.eye(3).view(3, 3, 1, 1), "encoder.add_mean.bias": torch.zeros(3)}
    for k, v in sd.items():
        k = k.replace("encoder.conv_first.", "encoder.head.0.").replace("encoder.conv_after_body.", "encoder.body.16.")
        k = k.replace(".conv1.", ".body.0.").replace(".conv2.", ".body.2.")
        out[k.replace("decoder.", "", 1)] = v
    return out


@pytest.fixture(scope="module")
def crop():
    """The stored LR crop (uint8) as the official run read it: float / 255."""
    lr = torch.tensor(PARITY["lr_crop_u8"], dtype=torch.uint8).permute(2, 0, 1).float().div(255).unsqueeze(0)
    assert lr.shape == (1, 3, 10, 12) and lr.sum().item() == pytest.approx(PARITY["lr_sum"], abs=1e-3)
    return lr


def test_stored_crop_is_the_set5_crop(crop):
    path = require_shared("datasets/Set5/LR_bicubic/X4/butterflyx4.png")
    img = np.asarray(Image.open(path).convert("RGB"))[20:30, 24:36]
    assert PARITY["lr_crop"].startswith("Set5/LR_bicubic/X4/butterflyx4.png rows 20:30, cols 24:36")
    assert np.array_equal(img, np.array(PARITY["lr_crop_u8"], dtype=np.uint8))


def _full_grid(size, batch=1):
    h, w = size
    coord = make_coord((h, w)).unsqueeze(0).expand(batch, -1, -1).contiguous()
    cell = make_cell((h, w), h * w).unsqueeze(0).expand(batch, -1, -1).contiguous()
    return coord, cell


def _check_case(pred: torch.Tensor, case: dict) -> None:
    """pred: (Q, 3) for the whole output grid of the case."""
    expected = torch.tensor(case["pred"])
    torch.testing.assert_close(pred[case["index"]], expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pred.double().mean(0), torch.tensor(case["mean"], dtype=torch.float64),
                               atol=1e-6, rtol=0)


# --- parity with the official forward ------------------------------------------------
def test_official_checkpoint_loads_and_matches_the_official_forward(crop, tmp_path):
    """The official layout of the default model, saved as the official training script
    does, loads through ciaosr.load_model and reproduces the official outputs at x2, x3.7
    and (x2, x3.5); so does the official order of operations (the reference decoder)."""
    model = ciaosr.build_model("edsr-baseline-itsrn")
    official_order_init(model)
    sd = to_official_layout(model.state_dict())
    assert [[k, list(v.shape)] for k, v in sd.items()] == PARITY["official_keys"]
    path = tmp_path / "epoch-last.pth"
    torch.save({"model": {**OFFICIAL_SPEC, "sd": sd}, "optimizer": {}, "epoch": 1000}, path)
    loaded = ciaosr.load_model(path)
    assert loaded.spec["name"] == "edsr-baseline-itsrn"
    assert loaded.spec["decoder_args"] == {"hidden": (256, 256, 256, 256), "out_dim": 3, "local_ensemble": True,
                                           "feat_unfold": True, "act": "gelu", "ensemble_hidden": 256}
    ref = reference_model(loaded)
    cases = [c for c in PARITY["cases"] if not c["variant"]]
    assert [tuple(c["size"]) for c in cases] == [(20, 24), (37, 44), (20, 42)]
    for case in cases:
        coord, cell = _full_grid(case["size"])
        with torch.no_grad():
            _check_case(loaded(crop, coord, cell)[0], case)
            _check_case(ref(crop, coord, cell)[0], case)


@pytest.mark.parametrize("switch", ["feat_unfold", "local_ensemble"])
def test_official_switches_match_the_official_forward(crop, switch):
    case = next(c for c in PARITY["cases"] if c["variant"] == {switch: False})
    model = ciaosr.build_model("edsr-baseline-itsrn", None, {switch: False}).eval()
    official_order_init(model)
    coord, cell = _full_grid(case["size"])
    with torch.no_grad():
        _check_case(model(crop, coord, cell)[0], case)
        _check_case(reference_model(model)(crop, coord, cell)[0], case)


def test_parameter_counts_match_the_official_code():
    """Counts of the official models (in the parity note's environment): LIIF's EDSR
    holds 24 more, its two unused MeanShift 1x1 convolutions (not parameters here)."""
    official = PARITY["params"]
    with torch.device("meta"):
        edsr = ciaosr.build_model("edsr-baseline-itsrn")
        rdn = ciaosr.build_model("rdn-itsrn")
    assert count_parameters(edsr) == official["edsr-baseline-itnsr"] - 24 == 1_865_730
    assert count_parameters(edsr.decoder) == official["edsr-baseline-itnsr decoder"] == 645_314
    assert count_parameters(rdn) == official["rdn-itnsr"] == 22_619_266
    assert count_parameters(ITSRNDecoder(180)) == official["decoder C=180"] == 1_450_238


# --- the decoder on its own ----------------------------------------------------------
VARIANTS = {"default": {}, "no-unfold": {"feat_unfold": False}, "no-ensemble": {"local_ensemble": False}}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("scale", SCALES, ids=str)
def test_folded_last_layer_equals_the_official_order(variant, scale):
    """The per-pixel table of the last layer gives what the 27C-wide transform matrix
    per query and neighbour gives (shapes, gradients, chunking, save/load:
    test_decoders_lte_metasr.py)."""
    dec = small_itsrn(**VARIANTS[variant]).eval()
    official_order_init(dec, 3)
    feat = torch.randn(2, C, H, W)
    coord, cell = grid(scale)
    with torch.no_grad():
        out = dec.query(dec.prepare(feat), coord, cell)
        ref = itsrn_query(dec, feat, coord, cell)
    assert out.abs().mean() > 0.1
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_neighbour_offset_is_itsrns_own():
    """The official shift, 1 / ((H - 1) / (1 - 1/h_out)) coordinate units, is a little more
    than LIIF's half pixel (1 / H). At x3 the middle output row of each LR row lies on the
    LR row's centre, so its lookups land on the rows either side, never its own: output
    row 4 of 30 (coordinate -0.7, the centre of LR row 1 of 10) gets rows 0 and 2."""
    dec = small_itsrn().eval()
    cell = torch.tensor([[[2 / 30, 2 / 30]]])
    coord = make_coord((30, 30))[4 * 30 + 7].view(1, 1, 2)
    assert coord[0, 0, 0].item() == pytest.approx(-0.7)
    pos = dec.positions(coord, cell, 10, 10)
    rows = [int(((p[0, 0, 0] + 1) / 2 * 10).floor()) for p in pos]
    assert rows == [0, 0, 2, 2]
    shift = (1 - 1 / 30) / 9
    assert pos[3][0, 0, 0].item() == pytest.approx(-0.7 + shift + 1e-6, abs=1e-6)


# --- official checkpoint detection ---------------------------------------------------
def _official_decoder_sd(c=64, local_ensemble=True):
    dec = ITSRNDecoder(c, local_ensemble=local_ensemble)
    return dict(dec.state_dict())


def test_official_args_from_keys_and_spec():
    sd = _official_decoder_sd()
    args = ITSRNDecoder.official_args(sd, OFFICIAL_SPEC["args"])
    assert args == {"hidden": (256, 256, 256, 256), "out_dim": 3, "local_ensemble": True, "feat_unfold": True,
                    "act": "gelu", "ensemble_hidden": 256}
    ITSRNDecoder(64, **args).load_state_dict(sd, strict=True)
    assert all(k.startswith(ITSRNDecoder.official_prefixes) for k in sd)
    # no spec (a bare state dict): the official defaults
    assert ITSRNDecoder.official_args(sd) == args
    relu = {"feat_unfold": False, "imnet_spec": {"name": "mlp", "args": {"hidden_list": [256] * 4, "act": "ReLU"}}}
    no_le = ITSRNDecoder.official_args(_official_decoder_sd(local_ensemble=False), relu)
    assert no_le == {"hidden": (256, 256, 256, 256), "out_dim": 3, "local_ensemble": False, "feat_unfold": False,
                     "act": "relu"}
    assert isinstance(ITSRNDecoder(64, **no_le).imnet.layers[1], torch.nn.ReLU)
    # LIIF's and MetaSR's MLPs are not ITSRN's, and ITSRN's is not LIIF's
    assert ITSRNDecoder.official_args({"imnet.layers.0.weight": torch.zeros(256, 580)}) is None
    assert ITSRNDecoder.official_args({"imnet.layers.0.weight": torch.zeros(256, 3)}) is None
    assert LIIFDecoder.official_args(sd) is None


@pytest.mark.parametrize("args,needle", [
    ({"embedding_coord": {"name": "mlp"}}, "embedding_coord"),
    ({"scale_token": False}, "scale_token"),
    ({"imnet_spec": {"name": "mlp", "args": {"hidden_list": [256] * 4}}}, "activation 'sine'"),  # the MLP's default
])
def test_unsupported_official_settings_are_refused(args, needle):
    with pytest.raises(CiaosrError, match=needle):
        ITSRNDecoder.official_args(_official_decoder_sd(), args)


def test_unknown_activation_is_a_bad_argument():
    with pytest.raises(CiaosrError, match="bad arguments.*activation must be one of relu, gelu, not 'sine'"):
        ciaosr.build_model("edsr-baseline-itsrn", {"num_blocks": 1}, {"act": "sine"})


def test_bare_official_state_dict_with_rdn_loads(tmp_path):
    """A bare ``sd`` (no spec) with the official RDN's names (the encoder of the official
    ITSRN code) is detected as rdn-itsrn and computes what the model it came from does."""
    enc_args = {"num_blocks": 2, "num_layers": 2, "mid_channels": 16, "channel_growth": 16}
    model = ciaosr.build_model("rdn-itsrn", enc_args, {"hidden": [32], "ensemble_hidden": 16}).eval()
    sd = {}
    for k, v in model.state_dict().items():
        k = k.replace("encoder.sfe1.", "encoder.SFENet1.").replace("encoder.sfe2.", "encoder.SFENet2.")
        k = k.replace("encoder.gff.", "encoder.GFF.").replace(".lff.", ".LFF.").replace("encoder.rdbs.", "encoder.RDBs.")
        k = k.replace(".layers.", ".convs.") if k.startswith("encoder.") else k
        k = k.replace(".conv.", ".conv.0.") if k.startswith("encoder.") else k
        sd[k.replace("decoder.", "", 1)] = v
    assert "encoder.RDBs.1.convs.1.conv.0.weight" in sd and "Score.layers.2.bias" in sd
    path = tmp_path / "itsrn.pth"
    torch.save(sd, path)
    loaded = ciaosr.load_model(path)
    assert loaded.spec["name"] == "rdn-itsrn"
    lr = torch.rand(1, 3, 7, 9)
    coord, cell = _full_grid((16, 31))
    with torch.no_grad():
        assert torch.equal(model(lr, coord, cell), loaded(lr, coord, cell))


def test_training_smoke(tmp_path):
    """The smoke config with an ITSRN decoder: the loss falls, the export loads and upscales."""
    model = train_smoke(tmp_path, "edsr-baseline-itsrn", "{hidden: [32, 32], ensemble_hidden: 16}")
    assert model.spec["decoder_args"]["ensemble_hidden"] == 16

"""RDN and SwinIR encoder trunks against the official CiaoSR parity vectors."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F

from ciaosr.encoders import rdn as rdn_mod
from ciaosr.encoders import swinir as swin_mod
from ciaosr.encoders.rdn import RDN
from ciaosr.encoders.swinir import SwinIR, relative_position_index, shifted_window_mask
from ciaosr.errors import CiaosrError

ATOL = 1e-5
DECODER_PREFIXES = ("imnet_q.", "imnet_k.", "imnet_v.", "cs_attn.")
OFFICIAL_BUFFERS = ("relative_position_index", "attn_mask")

# imnet_q + imnet_k + imnet_v + cs_attn for C = 64 (given in the parity FORMAT.md)
DECODER_PARAMS_C64 = 362_243 + 494_144 + 526_976 + 45_251


def _decoder_params(c: int) -> int:
    def mlp(i: int, o: int) -> int:  # 4 hidden Linear(256) then Linear(256, o)
        return (i * 256 + 256) + 3 * (256 * 256 + 256) + (256 * o + o)

    cs_attn = 2 * (c * (c // 2) + c // 2 + 1) + (c * c + c + 1) + (9 * c * c + c)
    return mlp(10 * c, 3) + mlp(9 * c + 4, 9 * c) + mlp(10 * c + 4, 10 * c) + cs_attn


def _n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _encoder_sd(sd: dict) -> dict:
    return {
        k: v
        for k, v in sd.items()
        if not k.startswith(DECODER_PREFIXES) and not k.endswith(OFFICIAL_BUFFERS)
    }


@functools.lru_cache(maxsize=None)
def _load(path: str) -> dict:
    return torch.load(path, weights_only=True)


@functools.lru_cache(maxsize=None)
def _swin_small_from(path: str) -> SwinIR:
    sd = _load(path)["state_dict"]
    model = SwinIR(**swin_mod.args_from_state_dict(sd)).eval()
    model.load_state_dict(_encoder_sd(sd), strict=True)
    return model


@pytest.fixture
def rdn_pack(shared):
    return _load(str(shared("parity/ciaosr_rdn_small_seed0.pt")))


@pytest.fixture
def swin_pack(shared):
    return _load(str(shared("parity/ciaosr_swinir_small_seed0.pt")))


@pytest.fixture
def swin_small(shared):
    return _swin_small_from(str(shared("parity/ciaosr_swinir_small_seed0.pt")))


# ----------------------------------------------------------------------------- RDN


def test_rdn_small_parity(rdn_pack):
    args = rdn_mod.args_from_state_dict(rdn_pack["state_dict"])
    assert args == {
        "in_channels": 3,
        "mid_channels": 64,
        "num_blocks": 2,
        "num_layers": 3,
        "channel_growth": 64,
    }
    model = RDN(**args).eval()
    model.load_state_dict(_encoder_sd(rdn_pack["state_dict"]), strict=True)
    assert model.out_dim == 64
    assert _n_params(model) == rdn_pack["meta"]["params"]["encoder"] == 559_552

    batch = rdn_pack["cases"][3]
    assert batch["kind"] == "train_like_batch"
    with torch.no_grad():
        pairs = ((rdn_pack["lq_norm"], rdn_pack["feat"]), (batch["lq_norm"], batch["feat"]))
        for inp, ref in pairs:
            out = model(inp)
            assert out.shape == ref.shape
            assert (out - ref).abs().max().item() < ATOL


def test_rdn_default_size_and_args():
    model = RDN()
    assert model.out_dim == 64
    assert _n_params(model) + DECODER_PARAMS_C64 == 23_402_566
    assert rdn_mod.args_from_state_dict(model.state_dict()) == {
        "in_channels": 3,
        "mid_channels": 64,
        "num_blocks": 16,
        "num_layers": 8,
        "channel_growth": 64,
    }


def test_rdn_odd_size_and_bad_args():
    model = RDN(mid_channels=8, num_blocks=2, num_layers=2, channel_growth=8).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 13, 17)).shape == (2, 8, 13, 17)
    # a growth G other than the width G0 (OPE-SR's RDN: 147 and 64), as LIIF's RDN code allows
    narrow = RDN(mid_channels=12, num_blocks=2, num_layers=2, channel_growth=8).eval()
    with torch.no_grad():
        assert narrow(torch.randn(1, 3, 9, 10)).shape == (1, 12, 9, 10)
    assert rdn_mod.args_from_state_dict(narrow.state_dict())["channel_growth"] == 8
    with pytest.raises(CiaosrError):
        rdn_mod.args_from_state_dict({"generator.sfe1.weight": torch.zeros(64, 3, 3, 3)})


# -------------------------------------------------------------------------- SwinIR


def test_swinir_small_args_and_keys(swin_pack, swin_small):
    sd = swin_pack["state_dict"]
    assert swin_mod.args_from_state_dict(sd) == {
        "in_channels": 3,
        "embed_dim": 60,
        "depths": (2, 2),
        "num_heads": (2, 2),
        "window_size": 8,
        "mlp_ratio": 2.0,
        "qkv_bias": True,
        "patch_norm": True,
        "resi_connection": "1conv",
    }
    assert swin_small.out_dim == 60
    assert _n_params(swin_small) == swin_pack["meta"]["params"]["encoder"] == 218_940
    # The runtime buffers are not saved: the state dict is exactly the official one
    # minus decoder keys and those buffers.
    assert set(swin_small.state_dict()) == set(_encoder_sd(sd))


def test_swinir_buffers_match_official(swin_pack, swin_small):
    sd = swin_pack["state_dict"]
    n_index = n_mask = 0
    for key, ref in sd.items():
        if key.endswith(".attn.relative_position_index"):
            ours = swin_small.get_submodule(key.rsplit(".", 1)[0]).relative_position_index
            assert ours.dtype == torch.int64 and torch.equal(ours, ref)
            n_index += 1
        elif key.endswith(".attn_mask"):
            # stored masks were built for the official img_size = 48
            assert torch.equal(shifted_window_mask(48, 48, 8, 4), ref)
            n_mask += 1
    assert (n_index, n_mask) == (4, 2)
    stored = sd["layers.0.residual_group.blocks.0.attn.relative_position_index"]
    assert torch.equal(relative_position_index(8), stored)


def test_swinir_small_parity(swin_pack, swin_small):
    batch = swin_pack["cases"][3]
    assert batch["kind"] == "train_like_batch"
    with torch.no_grad():
        pairs = ((swin_pack["lq_norm"], swin_pack["feat"]), (batch["lq_norm"], batch["feat"]))
        for inp, ref in pairs:
            out = swin_small(inp)  # 20 x 24: rows are padded to 24 and cropped back
            assert out.shape == ref.shape
            assert (out - ref).abs().max().item() < ATOL


def test_swinir_mask_cache_follows_size(swin_pack, swin_small):
    x = swin_pack["lq_norm"]
    with torch.no_grad():
        swin_small(torch.randn(1, 3, 40, 16))  # cache a different padded size
        assert swin_small.attn_mask.shape == (5 * 2, 64, 64)  # one mask per 8x8 window
        out = swin_small(x)
    assert swin_small.attn_mask.shape == (9, 64, 64)
    assert (out - swin_pack["feat"]).abs().max().item() < ATOL


def test_swinir_odd_sizes_pad_and_crop():
    swin_small = SwinIR(embed_dim=60, depths=(2, 2), num_heads=(2, 2)).eval()
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 13, 17, generator=gen)
    with torch.no_grad():
        out = swin_small(x)
        # same as running on the bottom/right reflect-padded 16 x 24 image, cropped
        padded = swin_small(F.pad(x, (0, 7, 0, 3), mode="reflect"))
        tiny = swin_small(torch.randn(1, 3, 3, 1, generator=gen))
    assert out.shape == (2, 60, 13, 17)
    assert torch.allclose(out, padded[:, :, :13, :17], atol=1e-6)
    assert tiny.shape == (1, 60, 3, 1) and torch.isfinite(tiny).all()


def test_swinir_drop_path_only_in_training():
    torch.manual_seed(1)
    model = SwinIR(embed_dim=16, depths=(2,), num_heads=(2,), window_size=4, drop_path_rate=0.5)
    x = torch.randn(2, 3, 8, 8)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
        model.train()
        a, b = model(x), model(x)
    assert not torch.equal(a, b)


def test_swinir_default_size_and_args():
    model = SwinIR()
    assert model.out_dim == 180
    assert _n_params(model) + _decoder_params(180) == 14_667_218
    assert _decoder_params(64) == DECODER_PARAMS_C64
    assert swin_mod.args_from_state_dict(model.state_dict()) == {
        "in_channels": 3,
        "embed_dim": 180,
        "depths": (6,) * 6,
        "num_heads": (6,) * 6,
        "window_size": 8,
        "mlp_ratio": 2.0,
        "qkv_bias": True,
        "patch_norm": True,
        "resi_connection": "1conv",
    }


def test_swinir_args_for_other_variants():
    model = SwinIR(
        embed_dim=24, depths=(1, 3), num_heads=(2, 3), window_size=4, mlp_ratio=1.5,
        qkv_bias=False, patch_norm=False, resi_connection="3conv",
    )
    args = swin_mod.args_from_state_dict(model.state_dict())
    assert args["depths"] == (1, 3) and args["num_heads"] == (2, 3)
    assert args["window_size"] == 4 and args["mlp_ratio"] == 1.5
    flags = (args["qkv_bias"], args["patch_norm"], args["resi_connection"])
    assert flags == (False, False, "3conv")
    rebuilt = SwinIR(**args)
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    with pytest.raises(CiaosrError):
        swin_mod.args_from_state_dict({"module.conv_first.weight": torch.zeros(8, 3, 3, 3)})

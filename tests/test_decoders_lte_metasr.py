"""LTE and MetaSR decoders: shapes, gradients, chunking, prepare/query split, official
checkpoint layout, and LTE's test-time cell clipping; the shared checks also run on
ITSRN's decoder and its two official switches (its own tests: test_decoders_itsrn.py)."""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ciaosr.geometry import make_cell, make_coord, scaled_size
from ciaosr.decoders.itsrn import ITSRNDecoder
from ciaosr.decoders.lte import LTEDecoder
from ciaosr.decoders.metasr import MetaSRDecoder
from ciaosr.errors import CiaosrError
from ciaosr.models.sr_model import ImplicitSRModel


C, H, W = 16, 9, 11
SCALES = [2.0, 3.7, (2.0, 3.5)]


def small_lte(**kw) -> LTEDecoder:
    kw = {"hidden_dim": 32, "mlp_hidden": (32, 32, 32), **kw}
    return LTEDecoder(C, **kw)


def small_metasr() -> MetaSRDecoder:
    return MetaSRDecoder(C, hidden=32)


def small_itsrn(**kw) -> ITSRNDecoder:
    return ITSRNDecoder(C, **{"hidden": (32, 32), "ensemble_hidden": 16, **kw})


DECODERS = {"lte": small_lte, "metasr": small_metasr, "itsrn": small_itsrn,
            "itsrn-no-unfold": lambda: small_itsrn(feat_unfold=False),
            "itsrn-no-ensemble": lambda: small_itsrn(local_ensemble=False)}


def full_grid(size, batch=1):
    """Every pixel of an output of ``size``: (batch, h*w, 2) coordinates and cells."""
    h, w = size
    coord = make_coord((h, w)).unsqueeze(0).expand(batch, -1, -1).contiguous()
    cell = make_cell((h, w), h * w).unsqueeze(0).expand(batch, -1, -1).contiguous()
    return coord, cell


def train_smoke(tmp_path, model: str, decoder_args: str, encoder_args: str | None = None):
    """30 iterations of the smoke config with ``model`` (``decoder_args``, and
    ``encoder_args`` in place of the config's, YAML mappings): the loss falls; returns the
    exported model, loaded."""
    import json

    import numpy as np

    import ciaosr
    from ciaosr.training.config import load_config
    from ciaosr.training.trainer import Trainer

    from conftest import REPO, require_shared

    out = tmp_path / "runs"
    cfg = load_config(REPO / "configs" / "smoke.yaml", [
        f"data_root={require_shared('datasets')}", "data.train=[T91/HR]", f"output_dir={out}", "name=smoke",
        f"model.name={model}", f"model.decoder_args={decoder_args}",
        "val.datasets=[]", "train.iterations=30", "train.save_every=1000", "train.progress=false"]
        + ([f"model.encoder_args={encoder_args}"] if encoder_args else []))
    assert Trainer(cfg).run().step == 30
    rows = [json.loads(line) for line in (out / "smoke" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert len(losses) == 6 and all(np.isfinite(losses))
    assert np.mean(losses[-2:]) < 0.7 * losses[0], losses
    loaded = ciaosr.load_model(out / "smoke" / "last.safetensors")
    assert loaded.spec["name"] == model
    sr = loaded.upsample(torch.rand(1, 3, 12, 12), (30, 41))
    assert sr.shape == (1, 3, 30, 41) and torch.isfinite(sr).all()
    return loaded


def grid(scale, batch=2):
    th, tw = scaled_size((H, W), scale)
    coord = make_coord((th, tw)).unsqueeze(0).expand(batch, -1, -1).contiguous()
    cell = make_cell((th, tw), th * tw).unsqueeze(0).expand(batch, -1, -1).contiguous()
    return coord, cell


@pytest.fixture
def feat():
    return torch.randn(2, C, H, W)


@pytest.mark.parametrize("name", DECODERS)
@pytest.mark.parametrize("scale", SCALES, ids=str)
def test_output_shape_and_finite(name, scale, feat):
    dec = DECODERS[name]().eval()
    coord, cell = grid(scale)
    with torch.no_grad():
        out = dec.query(dec.prepare(feat), coord, cell)
    assert out.shape == (2, coord.shape[1], 3)
    assert torch.isfinite(out).all()
    # the output depends on the image: the two batch items differ
    assert not torch.allclose(out[0], out[1])


@pytest.mark.parametrize("name", DECODERS)
def test_gradients_reach_every_parameter(name, feat):
    dec = DECODERS[name]().train()
    feat = feat.clone().requires_grad_(True)
    coord, cell = grid((2.0, 3.5))
    dec(feat, coord, cell).square().mean().backward()
    for pname, p in dec.named_parameters():
        assert p.grad is not None, pname
        assert p.grad.abs().sum() > 0, pname
    assert feat.grad.abs().sum() > 0


@pytest.mark.parametrize("name", DECODERS)
@pytest.mark.parametrize("scale", [3.7, (2.0, 3.5)], ids=str)
def test_chunk_invariance(name, scale, feat):
    dec = DECODERS[name]().eval()
    coord, cell = grid(scale)
    with torch.no_grad():
        prep = dec.prepare(feat)
        full = dec.query(prep, coord, cell)
        n = coord.shape[1]
        bounds = [0, 1, 97, n // 2, n - 5, n]
        parts = [dec.query(prep, coord[:, a:b], cell[:, a:b]) for a, b in zip(bounds, bounds[1:])]
        # an arbitrary permutation of the queries gives the permuted outputs
        perm = torch.randperm(n)
        permuted = dec.query(prep, coord[:, perm], cell[:, perm])
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(permuted, full[:, perm], atol=1e-6, rtol=1e-5)


def test_lte_query_does_not_rerun_convs(feat):
    dec = small_lte().eval()
    calls = {"coef": 0, "freq": 0}
    for key in calls:
        getattr(dec, key).register_forward_hook(lambda *_, k=key: calls.__setitem__(k, calls[k] + 1))
    coord, cell = grid(3.7)
    with torch.no_grad():
        prep = dec.prepare(feat)
        assert calls == {"coef": 1, "freq": 1}
        for a in range(0, coord.shape[1], 400):
            dec.query(prep, coord[:, a:a + 400], cell[:, a:a + 400])
    assert calls == {"coef": 1, "freq": 1}


@pytest.mark.parametrize("name", ["metasr", "itsrn"])
def test_query_does_not_unfold(name, feat, monkeypatch):
    dec = DECODERS[name]().eval()
    coord, cell = grid(3.7)
    with torch.no_grad():
        prep = dec.prepare(feat)
        ref = dec.query(prep, coord, cell)

        def boom(*args, **kwargs):
            raise AssertionError("per-LR-pixel work inside query")

        monkeypatch.setattr(F, "unfold", boom)
        monkeypatch.setattr(F, "conv2d", boom)
        again = dec.query(prep, coord, cell)
    assert torch.equal(again, ref)


@pytest.mark.parametrize("name", DECODERS)
def test_state_dict_round_trip(name, feat):
    dec = DECODERS[name]().eval()
    buf = io.BytesIO()
    torch.save(dec.state_dict(), buf)
    buf.seek(0)
    torch.manual_seed(123)
    other = DECODERS[name]().eval()
    coord, cell = grid((2.0, 3.5))
    with torch.no_grad():
        before = other(feat, coord, cell)
        other.load_state_dict(torch.load(buf, weights_only=True), strict=True)
        after = other(feat, coord, cell)
        ref = dec(feat, coord, cell)
    assert not torch.allclose(before, ref)
    assert torch.equal(after, ref)


# --- LTE cell clipping ---------------------------------------------------------------
def _lte_pair():
    torch.manual_seed(1)
    clipped = small_lte(max_train_scale=4.0)
    plain = small_lte(max_train_scale=None)
    plain.load_state_dict(clipped.state_dict())
    return clipped, plain


@pytest.mark.parametrize("scale", [1.0, 2.0, 3.7, 4.0, (2.0, 3.5), (4.0, 1.5)], ids=str)
def test_lte_cell_clip_no_effect_up_to_x4(scale, feat):
    clipped, plain = _lte_pair()
    coord, cell = grid(scale)
    with torch.no_grad():
        a = clipped.eval()(feat, coord, cell)
        b = plain.eval()(feat, coord, cell)
    assert torch.equal(a, b)


@pytest.mark.parametrize("scale", [6.0, 8.0, (2.0, 6.0)], ids=str)
def test_lte_cell_clip_above_x4(scale, feat):
    clipped, plain = _lte_pair()
    coord, cell = grid(scale)
    h_w = torch.tensor([H, W], dtype=torch.float32)
    out_hw = torch.tensor(scaled_size((H, W), scale), dtype=torch.float32)
    # the official test-time rule: cell * max(s / 4, 1), per axis here
    factor = torch.clamp((out_hw / h_w) / 4.0, min=1.0)
    with torch.no_grad():
        a = clipped.eval()(feat, coord, cell)
        b = plain.eval()(feat, coord, cell)
        official = plain(feat, coord, cell * factor)
        train_mode = clipped.train()(feat, coord, cell)
    assert (a - b).abs().max() > 1e-4
    torch.testing.assert_close(a, official, atol=1e-5, rtol=1e-5)
    # while training the knob is off
    assert torch.equal(train_mode, b)


# --- semantics ---------------------------------------------------------------------
def test_lte_ensemble_weights_sum_to_one(feat):
    """With a constant MLP the blended prediction is that constant everywhere."""
    dec = small_lte().eval()
    last = dec.imnet.layers[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor([0.3, -1.2, 2.0]))
        coord, cell = grid((2.0, 3.5))
        out = dec(feat, coord, cell)
    torch.testing.assert_close(out, last.bias.expand_as(out), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("axis", [0, 1])
def test_lte_continuous_where_the_neighbour_set_switches(axis, feat):
    """The four neighbours change when a query crosses an LR pixel CENTRE; with LIIF's
    diagonal area weights the neighbour that drops out has weight -> 0 there, so the
    output is continuous (a wrong pairing of areas and predictions makes it jump)."""
    dec = small_lte().eval()
    n = (H, W)[axis]
    centres = -1 + (2 * torch.arange(1, n - 1, dtype=torch.float32) + 1) / n
    other = torch.rand(centres.numel()) * 1.6 - 0.8
    delta = 1e-5
    pts = []
    for sign in (-1, 1):
        c = torch.empty(centres.numel(), 2)
        c[:, axis] = centres + sign * delta
        c[:, 1 - axis] = other
        pts.append(c)
    coord = torch.cat(pts).unsqueeze(0).expand(2, -1, -1).contiguous()
    cell = torch.full_like(coord, 2 / 30)
    with torch.no_grad():
        out = dec(feat, coord, cell)
    k = centres.numel()
    jump = (out[:, :k] - out[:, k:]).abs().max()
    spread = out.std()
    assert jump < 1e-2 * spread, (jump, spread)


def test_metasr_picks_nearest_pixel_centre_tap(feat):
    """A weight MLP that always outputs 'centre tap of channel c -> output c' turns MetaSR
    into nearest-neighbour upsampling of the first three channels: checks the unfold
    layout (c*9 + 4 is the centre) and the LR pixel chosen for each query."""
    dec = small_metasr().eval()
    last = dec.imnet.layers[-1]
    target = torch.zeros(9 * C, 3)
    for c in range(3):
        target[c * 9 + 4, c] = 1.0
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(target.reshape(-1))
        coord, cell = grid(3.0)
        out = dec(feat, coord, cell)
    th, tw = scaled_size((H, W), 3.0)
    expected = feat[:, :3].repeat_interleave(3, dim=2).repeat_interleave(3, dim=3)
    assert expected.shape[-2:] == (th, tw)
    torch.testing.assert_close(out, expected.flatten(2).transpose(1, 2))


def test_metasr_matches_meta_upscale_formula(feat):
    """Each output pixel (i, j) of an (th, tw) image uses LR pixel
    (floor(i H / th), floor(j W / tw)), position input = the fractional parts of
    (i H / th, j W / tw) and scale input H / th (Meta-SR's R(i/r) - floor(i/r)); the
    prediction is that pixel's 3x3 neighbourhood (channel-major) times the predicted
    (9C, 3) matrix. Computed here with index arithmetic, not grid_sample."""
    dec = small_metasr().eval()
    scale = (2.5, 3.7)
    th, tw = scaled_size((H, W), scale)
    coord, cell = grid(scale)
    with torch.no_grad():
        out = dec(feat, coord, cell)
        pos_r = torch.arange(th, dtype=torch.float64) * H / th
        pos_c = torch.arange(tw, dtype=torch.float64) * W / tw
        k_r, k_c = pos_r.floor().long(), pos_c.floor().long()
        frac = torch.stack(torch.meshgrid(pos_r - k_r, pos_c - k_c, indexing="ij"), -1).reshape(-1, 2)
        inp = torch.cat([frac, torch.full((th * tw, 1), H / th, dtype=torch.float64)], -1).float()
        wmat = dec.imnet(inp).view(th * tw, 9 * C, 3)
        padded = F.pad(feat, (1, 1, 1, 1))
        rr, cc = torch.meshgrid(k_r, k_c, indexing="ij")
        rr, cc = rr.reshape(-1), cc.reshape(-1)
        patches = torch.stack([padded[:, :, rr + dy, cc + dx] for dy in range(3) for dx in range(3)], -1)
        u = patches.permute(0, 2, 1, 3).reshape(2, th * tw, 9 * C)  # index c*9 + ky*3 + kx
        expected = torch.einsum("bqd,qdo->bqo", u, wmat)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)


def test_metasr_scale_input_is_row_scale(feat):
    """The official MetaSR feeds only the row scale: changing the column cell alone only
    moves the query's corner, so for an identical row cell and query corner the output
    is the same."""
    dec = small_metasr().eval()
    coord = torch.tensor([[[0.1, 0.2]]]).expand(2, 1, 2).contiguous()
    cell_a = torch.tensor([[[0.05, 0.04]]]).expand(2, 1, 2)
    cell_b = torch.tensor([[[0.05, 0.10]]]).expand(2, 1, 2)
    # keep the corner coord - cell/2 fixed while the column cell changes
    coord_b = coord + torch.tensor([0.0, 0.03])
    with torch.no_grad():
        prep = dec.prepare(feat)
        a = dec.query(prep, coord, cell_a)
        b = dec.query(prep, coord_b, cell_b)
        c = dec.query(prep, coord, torch.tensor([[[0.09, 0.04]]]).expand(2, 1, 2))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


# --- official checkpoint layout (the units' own detection; whole files: test_checkpoints) ---
LTE_SPEC_ARGS = {
    "encoder_spec": {"name": "edsr-baseline", "args": {"no_upsampling": True}},
    "imnet_spec": {"name": "mlp", "args": {"out_dim": 3, "hidden_list": [256, 256, 256]}},
    "hidden_dim": 256,
}


def test_lte_official_layout_loads():
    c = 64
    sd = {
        "coef.weight": torch.randn(256, c, 3, 3), "coef.bias": torch.randn(256),
        "freq.weight": torch.randn(256, c, 3, 3), "freq.bias": torch.randn(256),
        "phase.weight": torch.randn(128, 2),
    }
    dims = [256, 256, 256, 256, 3]
    for i, (fan_in, fan_out) in enumerate(zip(dims, dims[1:])):
        sd[f"imnet.layers.{2 * i}.weight"] = torch.randn(fan_out, fan_in)
        sd[f"imnet.layers.{2 * i}.bias"] = torch.randn(fan_out)
    kwargs = LTEDecoder.official_args(sd, LTE_SPEC_ARGS)
    assert kwargs == {"hidden_dim": 256, "mlp_hidden": (256, 256, 256), "out_dim": 3}
    dec = LTEDecoder(c, **kwargs)
    dec.load_state_dict(sd, strict=True)
    assert torch.equal(dec.phase.weight, sd["phase.weight"])
    assert all(k.startswith(LTEDecoder.official_prefixes) for k in sd)
    with pytest.raises(CiaosrError, match="imnet_spec"):
        LTEDecoder.official_args(sd, {})  # the MLP widths are not all in the weights
    assert LTEDecoder.official_args({"imnet.layers.0.weight": torch.zeros(256, 580)}, LTE_SPEC_ARGS) is None


def test_metasr_official_layout_loads():
    c = 64
    sd = {
        "imnet.layers.0.weight": torch.randn(256, 3), "imnet.layers.0.bias": torch.randn(256),
        "imnet.layers.2.weight": torch.randn(c * 27, 256), "imnet.layers.2.bias": torch.randn(c * 27),
    }
    kwargs = MetaSRDecoder.official_args(sd)
    assert kwargs == {"hidden": (256,), "out_dim": 3}
    dec = MetaSRDecoder(c, **kwargs)
    dec.load_state_dict(sd, strict=True)
    assert torch.equal(dec.imnet.layers[2].bias, sd["imnet.layers.2.bias"])
    # LIIF's first layer takes the 9C-wide latent code, MetaSR's only (rel, 1/s)
    assert MetaSRDecoder.official_args({"imnet.layers.0.weight": torch.zeros(256, 580)}) is None


def test_default_sizes_match_official():
    lte = LTEDecoder(64)
    assert lte.coef.weight.shape == (256, 64, 3, 3)
    assert lte.phase.weight.shape == (128, 2)
    assert [k for k in lte.state_dict() if k.startswith("imnet.")][-1] == "imnet.layers.6.bias"
    meta = MetaSRDecoder(64)
    assert meta.imnet.layers[0].weight.shape == (256, 3)
    assert meta.imnet.layers[2].weight.shape == (64 * 27, 256)


# --- inside the model wrapper ------------------------------------------------------
@pytest.mark.parametrize("name,residual", [("lte", True), ("metasr", False), ("itsrn", False)])
def test_in_model_wrapper_chunked_upsample(name, residual):
    encoder = nn.Conv2d(3, C, 3, padding=1)
    model = ImplicitSRModel(encoder, DECODERS[name](), mean=(0.5,) * 3, std=(0.5,) * 3,
                            residual=residual).eval()
    lr = torch.rand(1, 3, H, W)
    size = scaled_size((H, W), (2.0, 3.5))
    whole = model.upsample(lr, size, chunk=10 ** 6)
    chunked = model.upsample(lr, size, chunk=173)
    assert whole.shape == (1, 3, *size)
    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=1e-5)

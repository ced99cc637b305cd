"""The SRNO decoder: parity with the official forward from an official-format checkpoint
(whole grid, chunked, and the official banded evaluation), the attention over the whole
query set across chunks, detection, parameter counts, training.

Vectors: ``tests/data/official/srno.pth`` (an official-format checkpoint of a small
model) and ``srno_vectors.pt`` (inputs, the official outputs, the official parameter
counts), made by ``benchmarks/official/make_srno_vectors.py`` with the official SRNO code
in a throwaway environment (its docstring and the file's ``note`` say how).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import ciaosr
from ciaosr.decoders.liif import LIIFDecoder
from ciaosr.decoders.srno import SRNODecoder
from ciaosr.models.factory import count_parameters

from test_decoders_lte_metasr import full_grid, train_smoke

DATA = Path(__file__).parent / "data" / "official"
VEC = torch.load(DATA / "srno_vectors.pt", weights_only=True)


@pytest.fixture(scope="module")
def official():
    return ciaosr.load_model(DATA / "srno.pth").eval()


def test_official_checkpoint_matches_the_official_forward(official):
    """Whole grid (the official test.py) at x2, x3.7 and (x2, x3.5), equal whether decoded
    at once or in chunks of 97 (the attention sums gathered over all chunks first)."""
    ckpt = torch.load(DATA / "srno.pth", weights_only=True)
    assert [[k, list(v.shape)] for k, v in ckpt["model"]["sd"].items()] == VEC["official_keys"]
    assert official.spec["name"] == "edsr-baseline-srno"
    assert official.spec["decoder_args"] == {"width": 16, "heads": 2, "hidden": 256}
    assert [tuple(c["size"]) for c in VEC["cases"]] == [(20, 24), (37, 44), (20, 42)]
    for case in VEC["cases"]:
        coord, cell = full_grid(case["size"])
        with torch.no_grad():
            whole = official(VEC["lr"], coord, cell)[0]
            enc = official.encode(VEC["lr"])
            chunked = official.decode_chunked(enc, coord, cell, chunk=97)[0]
        assert "kv_means" not in enc.prepared  # the planned statistics stay with that call
        assert case["pred"].std() > 0.1
        torch.testing.assert_close(whole, case["pred"], atol=1e-5, rtol=0)
        torch.testing.assert_close(chunked, case["pred"], atol=1e-5, rtol=0)


def test_each_decode_call_is_its_own_query_set_as_the_official_banded_eval(official):
    """The official test.py with eval_bsize decodes bands of rows, each its own attention
    set (a different result): a bare decode of each band gives exactly that."""
    for case in VEC["cases"]:
        h, w = case["size"]
        coord, cell = full_grid((h, w))
        band = VEC["band"] * w
        with torch.no_grad():
            enc = official.encode(VEC["lr"])
            banded = torch.cat([official.decode(enc, coord[:, a:a + band], cell[:, a:a + band])
                                for a in range(0, h * w, band)], dim=1)[0]
        torch.testing.assert_close(banded, case["banded"], atol=1e-5, rtol=0)
        assert (case["banded"] - case["pred"]).abs().max() > 0.1


def test_training_forward_matches_the_official_training_path():
    """Two images at their own scales, random queries (the official training sampler's
    kind): one forward, each image's queries its own set."""
    train = VEC["train"]
    model = ciaosr.load_model(DATA / "srno.pth").train()
    cell = train["cell"].unsqueeze(1).expand(-1, train["coord"].shape[1], -1)
    with torch.no_grad():
        pred = model(train["lr"], train["coord"], cell)
    torch.testing.assert_close(pred, train["pred"], atol=1e-5, rtol=0)


def test_parameter_counts_match_the_official_code():
    """The official configuration (width 256, 16 heads) on EDSR-baseline and RDN, built by
    the official code in the vectors' run; LIIF's EDSR holds 24 more (its unused
    MeanShift convolutions)."""
    params = VEC["params"]
    with torch.device("meta"):
        edsr = ciaosr.build_model("edsr-baseline-srno")
        rdn = ciaosr.build_model("rdn-srno")
    assert count_parameters(edsr) == params["edsr-baseline"] - 24 == 2_015_299
    assert count_parameters(rdn) == params["rdn"] == 22_768_835
    assert count_parameters(edsr.decoder) == params["edsr-baseline"] - params["edsr-baseline encoder"] == 794_883


def test_bare_state_dict_is_detected(tmp_path, official):
    sd = torch.load(DATA / "srno.pth", weights_only=True)["model"]["sd"]
    dec = {k: v for k, v in sd.items() if not k.startswith("encoder.")}
    assert LIIFDecoder.official_args(dec) is None and SRNODecoder.official_args(dec) is not None
    torch.save(sd, tmp_path / "bare.pth")
    bare = ciaosr.load_model(tmp_path / "bare.pth").eval()
    assert bare.spec == official.spec
    coord, cell = full_grid((23, 31))
    with torch.no_grad():
        assert torch.equal(bare(VEC["lr"], coord, cell), official(VEC["lr"], coord, cell))


def small():
    return SRNODecoder(6, width=8, heads=2, hidden=16)


def test_any_chunking_gives_the_whole_set_result():
    torch.manual_seed(0)
    model = ciaosr.build_model("edsr-baseline-srno", {"mid_channels": 6, "num_blocks": 1},
                               {"width": 8, "heads": 2, "hidden": 16}).eval()
    lr = torch.rand(2, 3, 7, 9)
    coord, cell = full_grid((13, 20), batch=2)
    with torch.no_grad():
        whole = model(lr, coord, cell)
        enc = model.encode(lr)
        for chunk in (1, 50, 259, 260):
            model.decoder.stat_chunk = 37
            torch.testing.assert_close(model.decode_chunked(enc, coord, cell, chunk=chunk), whole,
                                       atol=1e-5, rtol=1e-5)
        sr = model.upsample(lr, (13, 20), chunk=64, clamp=False)
    torch.testing.assert_close(sr, model.to_image(whole).view(2, 13, 20, 3).permute(0, 3, 1, 2))
    assert not torch.allclose(whole[0], whole[1])


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    dec = small().train()
    feat = torch.randn(2, 6, 7, 9, requires_grad=True)
    coord, cell = full_grid((13, 20), batch=2)
    dec(feat, coord, cell).square().mean().backward()
    for name, p in dec.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert feat.grad.abs().sum() > 0


def test_training_smoke(tmp_path):
    """The smoke config with an SRNO decoder: the loss falls, the export loads and upscales."""
    model = train_smoke(tmp_path, "edsr-baseline-srno", "{width: 32, heads: 4, hidden: 32}")
    assert model.spec["decoder_args"]["heads"] == 4


def test_fused_attention_equals_the_official_order():
    """q (k^T v) / N folded into one width x width product per image equals the official
    order of operations (q, k, v, layer norms, k^T v, q times it)."""
    torch.manual_seed(0)
    layer = small().conv0
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(torch.randn_like(p) * 0.3)
        x = torch.randn(2, 300, 8)
        torch.testing.assert_close(layer(x), layer.official(x), atol=1e-5, rtol=1e-5)
        kv = layer.key_value(x[:, :100]) + layer.key_value(x[:, 100:])
        torch.testing.assert_close(layer(x[:, :7], kv / 300), layer.official(x)[:, :7], atol=1e-5, rtol=1e-5)


def test_tiled_upscale_differs_from_whole_and_warns_once(official, capsys, monkeypatch, tmp_path):
    """Each tile is its own query set for SRNO's attention: a tiled upscale is not the
    whole-image one. It still runs (a large image needs tiles), with one warning line on
    stderr the first time in a process, naming the --tile that decodes the image whole;
    one tile is the whole-image result, and LIIF (whose tiles differ only near the seams,
    as every model's) is not warned about. The same line reaches `ciaosr upscale`."""
    from ciaosr.inference import tiling
    monkeypatch.setattr(tiling, "_tiles_warned", set())
    torch.manual_seed(0)
    lr = torch.rand(1, 3, 40, 36)
    whole = official.upsample(lr, (80, 72))
    capsys.readouterr()
    for _ in range(2):
        tiled = tiling.tiled_upsample(official, lr, (80, 72), plan=tiling.plan_tiles(official, "cpu", 16, chunk=1000))
        assert (tiled - whole).abs().max() > 1e-2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("warning: edsr-baseline-srno upscaled in 9 tiles of 16 LR pixels")
    assert "its own set" in err and "--tile 40 (or more)" in err
    one = tiling.tiled_upsample(official, lr, (80, 72), plan=tiling.plan_tiles(official, "cpu", 40, chunk=1000))
    assert torch.equal(one, whole.float()) and capsys.readouterr().err == ""
    liif = ciaosr.build_model("edsr-baseline-liif", {"num_blocks": 1, "mid_channels": 8}, {"hidden": [8]}).eval()
    tiling.tiled_upsample(liif, lr, (80, 72), plan=tiling.plan_tiles(liif, "cpu", 16, chunk=1000))
    assert capsys.readouterr().err == ""

    from PIL import Image
    from ciaosr.cli.main import main
    monkeypatch.setattr(tiling, "_tiles_warned", set())
    Image.fromarray((lr[0].permute(1, 2, 0).numpy() * 255).astype("uint8")).save(tmp_path / "in.png")
    assert main(["upscale", str(tmp_path / "in.png"), "--model", str(DATA / "srno.pth"), "--scale", "2",
                 "--tile", "16", "--threads", "1", "-o", str(tmp_path / "out.png")]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(lines) == 1 and "differs from the whole-image result" in lines[0]

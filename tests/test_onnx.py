"""ONNX export and the onnxruntime backend (``ciaosr.onnx``): every exported graph passes
``onnx.checker`` and keeps H, W, B and Q dynamic; ONNX Runtime gives the torch path's
output to 1e-5 max abs for each decoder family, whole and tiled, at integer,
non-integer and asymmetric scales, on random and shipped weights; bad files are refused
with one line.

The models are tiny (one residual block, 16 channels) and CiaoSR's non-local attention is
exported in 2 bands instead of 8: exporting is what takes the time here (torch.export
traces each band). The default run exports LIIF and CiaoSR on EDSR-baseline; LTE, MetaSR,
ITSRN, SwinIR's window attention, every encoder with every decoder, and the 8-band
default are in ``-m slow`` (``.ci/run`` runs them).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install 'ciaosr[onnx]')")
pytest.importorskip("onnxscript", reason="onnxscript not installed (pip install 'ciaosr[onnx]')")

import onnx  # noqa: E402

import ciaosr  # noqa: E402
from ciaosr.cli.main import main  # noqa: E402
from ciaosr.errors import CiaosrError  # noqa: E402
from ciaosr.inference.upscale import upscale_tensor  # noqa: E402
from ciaosr.onnx.export import export_onnx, pair_paths  # noqa: E402
from ciaosr.onnx.runtime import OnnxModel, load_onnx_model  # noqa: E402

TOL = 1e-5
CPU = torch.device("cpu")
TINY_ENCODERS = {
    "edsr-baseline": {"num_blocks": 1, "mid_channels": 16},
    "rdn": {"num_blocks": 1, "num_layers": 2, "mid_channels": 16, "channel_growth": 16},
    "swinir": {"embed_dim": 12, "depths": [2], "num_heads": [2], "window_size": 4},
}
TINY_DECODERS = {
    "liif": {"hidden": [16, 16]},
    "lte": {"hidden_dim": 16, "mlp_hidden": [16]},
    "metasr": {"hidden": 16},
    "itsrn": {"hidden": [16], "ensemble_hidden": 8},
    "ciaosr": {"hidden": [16]},
}
#: (output height, width) of a 21 x 26 input, and the LR tile (None: whole)
#: The families exported in the default run: LIIF (the shipped model's) and CiaoSR; LTE,
#: MetaSR and ITSRN take a minute more to export and are checked the same way under -m slow.
DEFAULT_DECODERS = ("liif", "ciaosr")
FAMILIES = [d if d in DEFAULT_DECODERS else pytest.param(d, marks=pytest.mark.slow) for d in TINY_DECODERS]
CASES = [((63, 78), None), ((48, 60), None), ((73, 52), None), ((63, 78), 12), ((48, 60), 16), ((73, 52), 12)]
CASE_IDS = ["x3", "x2.3", "asym-h3.5-w2", "x3-tiled", "x2.3-tiled", "asym-tiled"]


def tiny(name: str):
    encoder, _, decoder = name.rpartition("-")
    torch.manual_seed(0)
    return ciaosr.build_model(name, TINY_ENCODERS[encoder], TINY_DECODERS[decoder]).eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """name -> (torch model, OnnxModel), each exported once for the module."""
    made = {}

    def get(name: str, bands: int = 2):
        if (name, bands) not in made:
            model = tiny(name)
            path = tmp_path_factory.mktemp("onnx") / f"{name}.onnx"
            export_onnx(model, path, attention_bands=bands)
            made[name, bands] = model, OnnxModel(path)
        return made[name, bands]

    return get


def lr_image(h=21, w=26, seed=1):
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


def assert_parity(model, onnx_model, lr, size, tile):
    ref = upscale_tensor(lr, size, model, device=CPU, tile=tile)
    out = upscale_tensor(lr, size, onnx_model, device=CPU, tile=tile)
    assert out.shape == ref.shape == (lr.shape[0], 3, *size)
    assert float((out - ref).abs().max()) <= TOL


# --- every decoder family, random weights ---------------------------------------------
@pytest.mark.parametrize("decoder", FAMILIES)
def test_graphs_pass_the_checker_with_dynamic_sizes_and_metadata(exported, decoder):
    model, om = exported(f"edsr-baseline-{decoder}")
    for path in (om.path, om.query_path):
        onnx.checker.check_model(str(path))
        proto = onnx.load(str(path))
        assert proto.opset_import[0].version >= 17
        props = {p.key: p.value for p in proto.metadata_props}
        assert props["ciaosr.model"] == f"edsr-baseline-{decoder}"
        assert json.loads(props["ciaosr.mean"]) == pytest.approx(model.mean.flatten().tolist())
        assert json.loads(props["ciaosr.std"]) == pytest.approx(model.std.flatten().tolist())
        assert props["ciaosr.residual"] == ("true" if model.residual else "false")
        assert json.loads(props["ciaosr.tiling"])["max_tile"] == model.decoder.max_tile
    inputs = {i.name: i for i in onnx.load(str(om.path)).graph.input}
    assert [d.dim_param != "" for d in inputs["lr"].type.tensor_type.shape.dim] == [False, False, True, True]
    query = {i.name: i for i in onnx.load(str(om.query_path)).graph.input}
    assert all(d.dim_param for d in query["coord"].type.tensor_type.shape.dim[:2])
    assert list(query)[1:-2] == om.tables


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("decoder", FAMILIES)
def test_onnxruntime_matches_torch(exported, decoder, case):
    model, om = exported(f"edsr-baseline-{decoder}")
    assert_parity(model, om, lr_image(), *case)


def test_a_batch_of_images_through_the_api(exported):
    model, om = exported("edsr-baseline-ciaosr")
    batch = torch.rand(2, 3, 17, 23)
    ref = ciaosr.upscale(batch, scale=2.5, model=model, device="cpu")
    out = ciaosr.upscale(batch, scale=2.5, model=om, backend="onnxruntime")
    assert out.shape == ref.shape and float((out - ref).abs().max()) <= TOL


@pytest.mark.slow  # half a minute of export
def test_swinir_window_attention(exported):
    """SwinIR's shifted-window attention, its mask made in the graph from the size (RDN
    and the other pairs: ``-m slow`` too)."""
    model, om = exported("swinir-liif")
    for size, tile in CASES[::2]:
        assert_parity(model, om, lr_image(), size, tile)


@pytest.mark.slow
@pytest.mark.parametrize("decoder", list(TINY_DECODERS))
@pytest.mark.parametrize("encoder", list(TINY_ENCODERS))
def test_every_encoder_with_every_decoder(exported, encoder, decoder):
    model, om = exported(f"{encoder}-{decoder}")
    for size, tile in CASES:
        assert_parity(model, om, lr_image(), size, tile)


@pytest.mark.slow
def test_ciaosr_default_attention_bands(exported):
    """The 8 bands ``ciaosr export`` writes, from the smallest input they take (8) up."""
    model, om = exported("edsr-baseline-ciaosr", bands=8)
    assert om.min_size == 8 and om.max_size == 192
    for h, w in [(8, 9), (15, 40), (64, 50)]:
        assert_parity(model, om, lr_image(h, w), (3 * h, 3 * w), None)
    with pytest.raises(CiaosrError, match="takes 8 to 192"):
        om.encode(lr_image(7, 20))


# --- shipped weights, the cache, the command line ----------------------------------------
def test_shipped_weights_exported_on_the_fly_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    torch.set_num_threads(1)
    om = load_onnx_model("edsr-baseline-liif")
    assert om.path.is_relative_to(tmp_path / "cache" / "ciaosr" / "onnx")
    assert om._encode.get_session_options().intra_op_num_threads == 1  # the thread setting
    model = ciaosr.load_model("edsr-baseline-liif")
    for size, tile in [((42, 60), None), ((50, 47), 16)]:
        assert_parity(model, om, lr_image(20, 24), size, tile)
    # a second load finds the entry: nothing is exported again
    monkeypatch.setattr("ciaosr.onnx.cache.export_onnx", lambda *a, **k: pytest.fail("exported again"))
    assert load_onnx_model("edsr-baseline-liif").path == om.path


def _png(path, h=20, w=24):
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def _read16(path):
    from PIL import Image

    return np.asarray(Image.open(path)).astype(np.float64) / 65535


def test_cli_export_then_upscale_with_onnxruntime(tmp_path, capsys):
    tiny_model_file = str(ciaosr.save_checkpoint(tiny("edsr-baseline-liif"), tmp_path / "tiny.safetensors"))
    out = tmp_path / "new" / "tiny.onnx"  # its folder is made, as upscale makes its output's
    assert main(["export", tiny_model_file, "-o", str(out)]) == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny.onnx", "tiny.query.onnx"]
    assert main(["export", tiny_model_file, "-o", str(out)]) == 2  # kept unless --overwrite
    assert "already exists" in capsys.readouterr().err
    src = _png(tmp_path / "in.png")
    for backend, model in (("torch", tiny_model_file), ("onnxruntime", str(out))):
        assert main(["upscale", str(src), "--scale", "2.5", "--model", model, "--backend", backend,
                     "--bit-depth", "16", "--threads", "1", "-o", str(tmp_path / f"{backend}.png")]) == 0
    a, b = _read16(tmp_path / "torch.png"), _read16(tmp_path / "onnxruntime.png")
    assert a.shape == b.shape == (50, 60, 3) and np.abs(a - b).max() <= 1 / 65535


@pytest.mark.slow
def test_official_ciaosr_checkpoint_through_the_cli(tmp_path, shared):
    """The official CiaoSR state dict of shared/parity (EDSR-baseline), exported and run
    by `ciaosr upscale --backend onnxruntime`, gives the torch path's image."""
    data = torch.load(shared("parity/ciaosr_edsr_seed0.pt"), weights_only=True)
    ckpt = tmp_path / "official.pth"
    torch.save({"state_dict": {f"generator.{k}": v for k, v in data["state_dict"].items()}}, ckpt)
    out = tmp_path / "official.onnx"
    assert main(["export", str(ckpt), "-o", str(out)]) == 0
    src = _png(tmp_path / "in.png", 30, 41)
    for backend, model in (("torch", str(ckpt)), ("onnxruntime", str(out))):
        assert main(["upscale", str(src), "--scale", "3.3", "--model", model, "--backend", backend,
                     "--bit-depth", "16", "-o", str(tmp_path / f"{backend}.png")]) == 0
    a, b = _read16(tmp_path / "torch.png"), _read16(tmp_path / "onnxruntime.png")
    assert a.shape == b.shape and np.abs(a - b).max() <= 1 / 65535


# --- refusals ----------------------------------------------------------------------------
def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_corrupt_and_foreign_files_are_refused_with_one_line(tmp_path, capsys):
    src = _png(tmp_path / "in.png")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07garbage, not a protobuf" * 10)
    err = _one_line_error(capsys, ["upscale", str(src), "--scale", "2", "--backend", "onnxruntime",
                                   "--model", str(corrupt)])
    assert "not a readable ONNX file" in err
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    foreign = tmp_path / "foreign.onnx"
    onnx.save(onnx.helper.make_model(onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])],
                                                             "g", [x], [onnx.helper.make_tensor_value_info(
                                                                 "y", onnx.TensorProto.FLOAT, [1])])), str(foreign))
    err = _one_line_error(capsys, ["upscale", str(src), "--scale", "2", "--backend", "onnxruntime",
                                   "--model", str(foreign)])
    assert "not a model that 'ciaosr export' wrote" in err
    assert "onnxruntime backend runs on the CPU" in _one_line_error(
        capsys, ["upscale", str(src), "--scale", "2", "--backend", "onnxruntime", "--device", "cuda"])
    assert "computes in fp32" in _one_line_error(
        capsys, ["upscale", str(src), "--scale", "2", "--backend", "onnxruntime", "--precision", "bf16"])
    assert "<name>.onnx" in _one_line_error(capsys, ["export", "edsr-baseline-liif", "-o", str(tmp_path / "x.pt")])
    assert "cannot create output folder" in _one_line_error(
        capsys, ["export", "edsr-baseline-liif", "-o", str(src / "sub" / "x.onnx")])  # below a file


def test_a_query_graph_from_other_weights_is_refused(exported, tmp_path):
    _, om = exported("edsr-baseline-liif")
    for path in (om.path, om.query_path):
        proto = onnx.load(str(path))
        if path == om.query_path:  # as if exported from other weights
            next(p for p in proto.metadata_props if p.key == "ciaosr.weights").value = "0" * 64
        onnx.save(proto, str(tmp_path / path.name))
    with pytest.raises(CiaosrError, match="not the query graph"):
        OnnxModel(tmp_path / om.path.name)

"""Our safetensors format, architecture detection, and one-line errors for bad files."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from safetensors import safe_open

import ciaosr
from ciaosr import CiaosrError
from ciaosr.checkpoints.native import FORMAT_TAG
from ciaosr.cli.main import main
from ciaosr.geometry import make_cell, make_coord

SMALL = {
    "edsr-baseline-ciaosr": ({"num_blocks": 2, "mid_channels": 16}, {"hidden": [32, 32]}),
    "edsr-baseline-liif": ({"num_blocks": 2, "mid_channels": 16}, {"hidden": [32, 32]}),
    "rdn-ciaosr": ({"num_blocks": 2, "num_layers": 2, "mid_channels": 16, "channel_growth": 16}, {"hidden": [32]}),
    "swinir-ciaosr": ({"embed_dim": 16, "depths": [2], "num_heads": [2], "window_size": 4}, {"hidden": [32]}),
    "edsr-baseline-lte": ({"num_blocks": 2, "mid_channels": 16}, {}),
    "edsr-baseline-metasr": ({"num_blocks": 2, "mid_channels": 16}, {}),
    "edsr-baseline-itsrn": ({"num_blocks": 2, "mid_channels": 16}, {"hidden": [32], "ensemble_hidden": 16}),
}


def _queries(h, w, b=1):
    coord = make_coord((h, w)).unsqueeze(0).expand(b, -1, -1)
    cell = make_cell((h, w), h * w).unsqueeze(0).expand(b, -1, -1)
    return coord, cell


@pytest.mark.parametrize("name", list(SMALL))
def test_safetensors_round_trip_gives_identical_outputs(tmp_path, name):
    enc_args, dec_args = SMALL[name]
    model = ciaosr.build_model(name, enc_args, dec_args).eval()
    path = ciaosr.save_checkpoint(model, tmp_path / "m.safetensors", {"note": "test"})
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    assert meta["format"] == FORMAT_TAG and meta["model"] == name
    assert json.loads(meta["encoder_args"])["num_blocks" if "edsr" in name or "rdn" in name else "embed_dim"]
    loaded = ciaosr.load_model(path)
    lr = torch.rand(2, 3, 9, 11)
    coord, cell = _queries(25, 19, b=2)  # asymmetric scale
    with torch.no_grad():
        assert torch.equal(model(lr, coord, cell), loaded(lr, coord, cell))


def test_save_is_atomic_and_leaves_no_temporary(tmp_path):
    model = ciaosr.build_model("edsr-baseline-liif", *SMALL["edsr-baseline-liif"])
    ciaosr.save_checkpoint(model, tmp_path / "a.safetensors")
    assert [p.name for p in tmp_path.iterdir()] == ["a.safetensors"]


def test_default_model_loads_offline():
    model = ciaosr.load_model()
    assert model.spec["name"] == "edsr-baseline-liif"
    assert not model.training


def test_unknown_model_name():
    with pytest.raises(CiaosrError, match="unknown model 'edsr-baseline-foo'"):
        ciaosr.load_model("edsr-baseline-foo")
    with pytest.raises(CiaosrError, match="unknown model"):
        ciaosr.build_model("resnet-liif")


def test_model_without_shipped_weights():
    with pytest.raises(CiaosrError, match="no shipped weights"):
        ciaosr.load_model("rdn-lte")


def test_missing_file(tmp_path):
    with pytest.raises(CiaosrError, match="no such file"):
        ciaosr.load_model(tmp_path / "absent.pth")


def test_file_that_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("hello, I am not a checkpoint\n")
    with pytest.raises(CiaosrError, match="not a PyTorch checkpoint"):
        ciaosr.load_model(path)
    bad_st = tmp_path / "broken.safetensors"
    bad_st.write_bytes(b"\x00" * 40)
    with pytest.raises(CiaosrError, match="not a readable safetensors"):
        ciaosr.load_model(bad_st)


class _Custom:  # a class that weights_only loading must refuse
    pass


def test_pickle_needing_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "obj": _Custom()}, path)
    with pytest.raises(CiaosrError, match="refusing to unpickle"):
        ciaosr.load_model(path)


def test_undetectable_architecture(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"state_dict": {"conv.weight": torch.zeros(3, 3, 1, 1)}}, path)
    with pytest.raises(CiaosrError, match="cannot detect the model architecture"):
        ciaosr.load_model(path)
    path2 = tmp_path / "list.pth"
    torch.save([1, 2, 3], path2)
    with pytest.raises(CiaosrError, match="not a model checkpoint"):
        ciaosr.load_model(path2)


def test_weights_that_do_not_fit(tmp_path):
    model = ciaosr.build_model("edsr-baseline-ciaosr", *SMALL["edsr-baseline-ciaosr"])
    sd = {k.split(".", 1)[1]: v for k, v in model.state_dict().items()}
    sd["imnet_k.layers.0.weight"] = torch.zeros(5, 5)
    path = tmp_path / "bad_shapes.pth"
    torch.save(sd, path)
    with pytest.raises(CiaosrError, match="do not fit"):
        ciaosr.load_model(path)


def test_official_ciaosr_small_variants_detected_from_shapes(tmp_path):
    """A smaller EDSR trunk in the official layout (keys only, no config) is rebuilt."""
    model = ciaosr.build_model("edsr-baseline-ciaosr", *SMALL["edsr-baseline-ciaosr"])
    sd = {"generator." + k.split(".", 1)[1]: v for k, v in model.state_dict().items()}
    path = tmp_path / "iter_1000.pth"
    torch.save({"meta": {}, "state_dict": sd}, path)
    loaded = ciaosr.load_model(path)
    assert loaded.spec["encoder_args"]["num_blocks"] == 2
    assert loaded.spec["decoder_args"]["hidden"] == [32, 32]


@pytest.mark.parametrize("model_arg,needle", [
    ("no-such-model", "unknown model"),
    ("rdn-lte", "no shipped weights"),
    ("missing.pth", "no such file"),
])
def test_cli_bad_model_is_one_line(model_arg, needle, capsys, tmp_path):
    from PIL import Image

    img = tmp_path / "x.png"
    Image.new("RGB", (8, 8)).save(img)
    if model_arg.endswith(".pth"):
        model_arg = str(tmp_path / model_arg)
    code = main(["upscale", str(img), "--scale", "2", "--model", model_arg, "-o", str(tmp_path / "y.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error:") and needle in err[0]
    assert not (tmp_path / "y.png").exists()


@pytest.mark.parametrize("decoder,spec_args", [
    ("lte", {"hidden_dim": 32, "imnet_spec": {"name": "mlp", "args": {"out_dim": 3, "hidden_list": [16, 16]}}}),
    ("liif", {"imnet_spec": {"name": "mlp", "args": {"out_dim": 3, "hidden_list": [16, 16]}}}),
    ("metasr", {}),
    ("ITNSR", {"feat_unfold": True, "local_ensemble": True, "scale_token": True,
               "imnet_spec": {"name": "mlp", "args": {"hidden_list": [16, 16], "act": "gelu"}}}),
])
def test_official_liif_family_layout_loads(tmp_path, decoder, spec_args):
    """A checkpoint in the LIIF code base's format ({'model': {name, args, sd}}, LIIF's EDSR
    key names) loads through load_model and computes what the model it came from computes."""
    spec = {"name": decoder, "args": {"encoder_spec": {"name": "edsr-baseline", "args": {"no_upsampling": True}},
                                      **spec_args}}
    ours = {"ITNSR": "itsrn"}.get(decoder, decoder)  # ITSRN's official code calls it ITNSR
    dec_args = {"lte": {"hidden_dim": 32, "mlp_hidden": [16, 16]}, "metasr": {}, "liif": {"hidden": [16, 16]},
                "ITNSR": {"hidden": [16, 16]}}[decoder]
    model = ciaosr.build_model(f"edsr-baseline-{ours}", {"num_blocks": 2, "mid_channels": 16}, dec_args).eval()
    sd = {}
    for k, v in model.state_dict().items():  # rename to LIIF's EDSR layout
        k = k.replace("encoder.conv_first.", "encoder.head.0.").replace("encoder.conv_after_body.", "encoder.body.2.")
        k = k.replace(".conv1.", ".body.0.").replace(".conv2.", ".body.2.")
        sd[k.replace("decoder.", "", 1)] = v
    path = tmp_path / f"{decoder}.pth"
    torch.save({"model": {**spec, "sd": sd}, "epoch": 1000}, path)
    loaded = ciaosr.load_model(path)
    assert loaded.spec["name"] == f"edsr-baseline-{ours}"
    lr = torch.rand(1, 3, 8, 9)
    coord, cell = _queries(19, 30)
    with torch.no_grad():
        assert torch.equal(model(lr, coord, cell), loaded(lr, coord, cell))


# --------------------------------------------------------------------------------------
# --model files that are not models: one line in our words
# --------------------------------------------------------------------------------------
def _png(tmp_path):
    from PIL import Image

    path = tmp_path / "a.png"
    Image.new("RGB", (12, 10), (200, 100, 50)).save(path)
    return path


def _refused(capsys, code: int) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.mark.parametrize("kind,needle", [
    ("image", "not a PyTorch checkpoint (a PNG image)"),
    ("text", "not a PyTorch checkpoint (a text file)"),
    ("html", "not a PyTorch checkpoint (an HTML page"),
    ("empty", "not a PyTorch checkpoint (an empty file)"),
    ("truncated", "not a readable PyTorch checkpoint (truncated or corrupt)"),
    ("pickle", "not a PyTorch checkpoint (pickle data"),
    ("code", "it holds Python objects (test_checkpoints._Custom)"),
])
def test_model_files_that_are_not_models(tmp_path, capsys, kind, needle):
    img = _png(tmp_path)
    path = tmp_path / "model.pth"
    if kind == "image":
        path.write_bytes(img.read_bytes())
    elif kind == "text":
        path.write_text("hello, I am not a checkpoint\n")
    elif kind == "html":
        path.write_text("<!DOCTYPE html><html><body>404 Not Found</body></html>")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        torch.save({"w": torch.zeros(100)}, path)
        path.write_bytes(path.read_bytes()[:300])
    elif kind == "pickle":
        path.write_bytes(pickle.dumps({"w": [1, 2]}, protocol=4))
    else:
        torch.save({"state_dict": {"x": torch.zeros(1)}, "obj": _Custom()}, path)
    out = tmp_path / "out.png"
    code = main(["upscale", str(img), "--scale", "2", "--model", str(path), "-o", str(out)])
    line = _refused(capsys, code)
    assert needle in line
    assert "weights_only" not in line and "trust" not in line
    assert not out.exists()


def test_training_state_as_model_points_to_the_exported_weights(tmp_path, capsys, tiny_model_file):
    from ciaosr.training import checkpointing as ck

    img = _png(tmp_path)
    run = tmp_path / "runs" / "smoke"
    state = ck.save_state({"format": ck.STATE_FORMAT, "step": 5, "model": {}}, ck.state_path(run, 5))
    argv = ["upscale", str(img), "--scale", "2", "--model", str(state), "-o", str(tmp_path / "o.png")]
    line = _refused(capsys, main(argv))
    assert "a training state" in line and str(run.resolve() / "last.safetensors") in line
    ciaosr.save_checkpoint(ciaosr.load_model(tiny_model_file), run / "best.safetensors")
    ciaosr.save_checkpoint(ciaosr.load_model(tiny_model_file), run / "last.safetensors")
    line = _refused(capsys, main(argv))
    assert f"{run.resolve() / 'best.safetensors'} or {run.resolve() / 'last.safetensors'}" in line
    assert not (tmp_path / "o.png").exists()

"""The factory, parameter counts and ``ciaosr models``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

import ciaosr
from ciaosr.cli import models as models_cli
from ciaosr.cli.main import main
from ciaosr.geometry import make_cell, make_coord, scaled_size
from ciaosr.models.factory import count_parameters, default_parameter_count

PUBLISHED = {"edsr-baseline-ciaosr": 2_649_030, "edsr-baseline-liif": 1_567_299, "rdn-ciaosr": 23_402_566,
             "swinir-ciaosr": 14_667_218}


@pytest.mark.parametrize("name,count", PUBLISHED.items())
def test_published_parameter_counts(name, count):
    """Counted as ``ciaosr models`` counts (weights left unfilled, encoders counted once)
    and on a model really built."""
    assert default_parameter_count(name) == count
    assert count_parameters(ciaosr.build_model(name)) == count


def test_parameter_count_of_a_decoder_that_sets_its_encoder():
    """OPE widens EDSR-baseline to 147 channels: its count is not the 64-channel
    encoder's, counted before it, and the weights of models built after the counting
    are initialised again."""
    default_parameter_count("edsr-baseline-liif")
    assert default_parameter_count("edsr-baseline-ope") == count_parameters(ciaosr.build_model("edsr-baseline-ope"))
    encoder = ciaosr.build_model("edsr-baseline-liif").encoder
    assert encoder.body[0].conv1.weight.std() > 0 and encoder.conv_first.bias.abs().max() > 0


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    """A fresh per-user cache (``$XDG_CACHE_HOME``) for this test and its subprocesses."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_models_json(capsys, cache_home):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = {r["name"] for r in rows}
    assert {"edsr-baseline-ciaosr", "rdn-liif", "swinir-lte", "edsr-metasr", "swinir-itsrn"} <= names
    for r in rows:
        assert {"name", "encoder", "decoder", "params", "weights", "default"} <= r.keys()
        assert r["name"] == f"{r['encoder']}-{r['decoder']}"
    assert [r["name"] for r in rows if r["default"]] == ["edsr-baseline-liif"]
    assert next(r for r in rows if r["name"] == "edsr-baseline-liif")["weights"] is True
    assert next(r for r in rows if r["name"] == "edsr-baseline-ciaosr")["params"] == PUBLISHED["edsr-baseline-ciaosr"]


def test_models_table(capsys, cache_home):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "rdn-ciaosr" in out and "23,402,566" in out and "default model: edsr-baseline-liif" in out


# --- the command line starts without torch; the table is cached -------------------------
_TORCH_FREE = """
import contextlib, io, sys
import ciaosr.cli.main as m
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    rc = m.main(sys.argv[1:])
print(rc, "torch" in sys.modules)
"""


@pytest.mark.parametrize("argv,code", [(["--help"], 0), (["upscale", "--help"], 0), (["eval", "--help"], 0),
                                       (["upscale", "x.png", "--bit-depth", "12"], 2), (["models"], 0),
                                       (["models", "--json"], 0)])
def test_cli_start_and_a_cached_models_table_import_no_torch(cache_home, argv, code):
    """Building the parsers reads only torch-free modules (``ciaosr.options``, lazy
    packages), and ``ciaosr models`` prints a cached table: torch (seconds to import) is
    not loaded."""
    models_cli.cached_model_table()  # the first run, here, fills the cache
    run = subprocess.run([sys.executable, "-c", _TORCH_FREE, *argv], capture_output=True, text=True,
                         env={**os.environ, "XDG_CACHE_HOME": str(cache_home)})
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [str(code), "False"]


def test_package_attributes_load_on_first_use():
    assert {"upscale", "load_model", "build_model"} <= set(dir(ciaosr))
    assert callable(ciaosr.list_models) and ciaosr.build_model is ciaosr.models.factory.build_model
    with pytest.raises(AttributeError):
        ciaosr.no_such_function


def _no_table():
    pytest.fail("the table was made again instead of read from the cache")


def test_cached_table_equals_a_fresh_one(cache_home, monkeypatch):
    fresh = models_cli.model_table()
    assert models_cli.cached_model_table() == fresh  # a miss: made and stored
    assert list((cache_home / "ciaosr" / "models").iterdir()) == [models_cli._table_file()]
    monkeypatch.setattr(models_cli, "model_table", _no_table)
    assert models_cli.cached_model_table() == fresh  # a hit


@pytest.mark.parametrize("content", [b"[{\"name\": \"edsr", b"\xff\xfe", b"[]", b'{"rows": 1}',
                                     b'[{"name": "x"}]'])
def test_a_corrupt_cached_table_is_made_again(cache_home, capsys, content):
    fresh = models_cli.model_table()
    path = models_cli._table_file()
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    assert main(["models", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == fresh and err == ""
    assert json.loads(path.read_text()) == fresh  # and stored again


def test_another_version_or_source_is_another_key(cache_home, monkeypatch):
    """The key covers ciaosr's and torch's versions and the model sources: a change of
    any is a miss, which makes the table again."""
    models_cli.cached_model_table()
    key = models_cli.table_key()
    version = ciaosr.__version__
    changes = [(ciaosr, "__version__", "99.0"), ("ciaosr.cli.main.torch_version", lambda: "0.0"),
               (models_cli, "MODEL_SOURCES", ("models",))]
    for target, *change in changes:
        with monkeypatch.context() as patch:
            patch.setattr(target, *change)
            assert models_cli.table_key() != key
            made = []
            patch.setattr(models_cli, "model_table", lambda: made.append(1) or [dict(_ROW)])
            assert models_cli.cached_model_table() == [_ROW] and made == [1]
    assert ciaosr.__version__ == version and models_cli.table_key() == key


_ROW = {"name": "a-b", "encoder": "a", "decoder": "b", "params": 1, "weights": False, "default": False,
        "trained_on": None}


def test_an_unwritable_cache_still_prints_the_table(tmp_path, monkeypatch, capsys):
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))
    assert main(["models"]) == 0
    out, err = capsys.readouterr()
    assert "rdn-ciaosr" in out and err == ""


def test_coordinate_conventions():
    c = make_coord((2, 4))
    assert c.shape == (8, 2)
    assert torch.allclose(c[0], torch.tensor([-0.5, -0.75]))  # (row, col) of the first centre
    assert torch.allclose(c[-1], torch.tensor([0.5, 0.75]))
    assert torch.allclose(make_cell((50, 60), 3)[0], torch.tensor([2 / 50, 2 / 60]))
    assert scaled_size((20, 24), 2.5) == (50, 60)
    assert scaled_size((20, 24), (2.0, 3.5)) == (40, 84)
    assert scaled_size((5, 5), 2.5) == (12, 12)  # Python round: halves to even


@pytest.mark.parametrize("decoder", ["ciaosr", "liif", "lte", "metasr", "itsrn"])
def test_every_decoder_on_every_query_layout(decoder):
    """Symmetric, non-integer and asymmetric scales; gradients reach every parameter."""
    model = ciaosr.build_model(f"edsr-baseline-{decoder}", {"num_blocks": 1, "mid_channels": 8})
    lr = torch.rand(2, 3, 7, 9)
    for h, w in [(14, 18), (26, 33), (14, 32)]:
        coord = make_coord((h, w)).unsqueeze(0).expand(2, -1, -1)
        cell = make_cell((h, w), h * w).unsqueeze(0).expand(2, -1, -1)
        out = model(lr, coord, cell)
        assert out.shape == (2, h * w, 3) and torch.isfinite(out).all()
    model.zero_grad()
    out.abs().mean().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_grad == []


def test_ciaosr_ablation_switches():
    base = {"num_blocks": 1, "mid_channels": 8}
    no_nl = ciaosr.build_model("edsr-baseline-ciaosr", base, {"non_local": False})
    assert not hasattr(no_nl.decoder, "cs_attn")
    assert no_nl.decoder.imnet_q.in_dim == 9 * 8
    mlp = ciaosr.build_model("edsr-baseline-ciaosr", base, {"attention": "mlp"})
    assert not hasattr(mlp.decoder, "imnet_k") and mlp.decoder.imnet_a.out_dim == 1
    coord = make_coord((10, 12)).unsqueeze(0)
    cell = make_cell((10, 12), 120).unsqueeze(0)
    for m in (no_nl, mlp):
        assert m(torch.rand(1, 3, 5, 6), coord, cell).shape == (1, 120, 3)
    with pytest.raises(ciaosr.CiaosrError, match="bad arguments"):
        ciaosr.build_model("edsr-baseline-ciaosr", base, {"attention": "bogus"})


def test_ciaosr_residual_switch(tmp_path):
    """``residual=False`` (the official ``res=False`` of the real-world model) drops the
    global bilinear residual: the output is the decoder's alone; by default it is there."""
    base = {"num_blocks": 1, "mid_channels": 8}
    torch.manual_seed(0)
    with_res = ciaosr.build_model("edsr-baseline-ciaosr", base, {"hidden": [16]})
    torch.manual_seed(0)
    no_res = ciaosr.build_model("edsr-baseline-ciaosr", base, {"hidden": [16], "residual": False})
    assert with_res.residual and not no_res.residual
    lr = torch.rand(1, 3, 5, 6)
    coord = make_coord((10, 12)).unsqueeze(0)
    cell = make_cell((10, 12), 120).unsqueeze(0)
    decoded = no_res.decoder(no_res.encoder(no_res.normalise(lr)), coord, cell)
    assert torch.allclose(no_res(lr, coord, cell), decoded, atol=1e-6)
    bilinear = torch.nn.functional.grid_sample(with_res.normalise(lr), coord.flip(-1).unsqueeze(1), mode="bilinear",
                                               padding_mode="border", align_corners=False)[:, :, 0].permute(0, 2, 1)
    assert torch.allclose(with_res(lr, coord, cell), decoded + bilinear, atol=1e-5)
    # the switch travels with the weights
    path = ciaosr.save_checkpoint(no_res, tmp_path / "m.safetensors")
    loaded = ciaosr.load_model(path)
    assert not loaded.residual and torch.allclose(loaded(lr, coord, cell), decoded, atol=1e-6)


@pytest.mark.parametrize("decoder", ["ciaosr", "liif", "lte", "metasr", "itsrn"])
def test_cpu_decoding_uses_the_decoders_cpu_chunk_with_the_same_result(decoder):
    """On the CPU, fast decoders decode in their (small) ``cpu_chunk``; the output is the
    same as decoding every query in one go."""
    torch.manual_seed(0)
    small = {"lte": {"hidden_dim": 16, "mlp_hidden": [16]}, "metasr": {"hidden": 16},
             "itsrn": {"hidden": [16], "ensemble_hidden": 8}}.get(decoder, {"hidden": [16, 16]})
    model = ciaosr.build_model(f"edsr-baseline-{decoder}", {"num_blocks": 1, "mid_channels": 8}, small).eval()
    model.decoder.cpu_chunk = 50
    sizes = []
    original = model.decoder.query
    model.decoder.query = lambda prep, coord, cell: (sizes.append(coord.shape[1]), original(prep, coord, cell))[1]
    lr = torch.rand(1, 3, 5, 6)
    with torch.no_grad():
        chunked = model.upsample(lr, (13, 17), chunk=30000)
        model.decoder.cpu_chunk = None
        whole = model.upsample(lr, (13, 17), chunk=30000)
    assert sizes == [50] * 4 + [21] + [221]
    assert torch.allclose(chunked, whole, atol=1e-6)

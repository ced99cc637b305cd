"""torch.compile (ciaosr.compilation): compiled output equals eager, the number of
compiled graphs stays bounded over tiles, chunks and images of other sizes, copies keep
their own weights, and the command-line and config switches."""

from __future__ import annotations

import copy

import pytest
import torch

import ciaosr
from ciaosr.cli.main import main
from ciaosr.compilation import EAGER_QUERIES, compile_count, compile_model
from ciaosr.inference.tiling import tiled_upsample
from ciaosr.training.config import load_config

from conftest import REPO


@pytest.mark.slow  # inductor compiles four graphs: about 2 minutes on 2 busy cores; .ci/run runs it
def test_compiled_matches_eager_with_a_bounded_number_of_graphs():
    torch.manual_seed(0)
    eager = ciaosr.build_model("edsr-baseline-liif", {"num_blocks": 1, "mid_channels": 16},
                               {"hidden": [32, 32]}).eval()
    compiled = compile_model(copy.deepcopy(eager))
    assert compile_model(compiled) is compiled  # once
    graphs = []
    with torch.no_grad():
        for seed, (h, w) in enumerate([(30, 34), (26, 40), (33, 29)]):  # three images, four tiles each
            lr = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))
            size = (round(h * 2.5), round(w * 2.5))
            a = tiled_upsample(compiled, lr, size, tile=20, overlap=4, chunk=700)
            b = tiled_upsample(eager, lr, size, tile=20, overlap=4, chunk=700)
            assert (a - b).abs().max() <= 1e-5
            graphs.append(compile_count())
    assert graphs[2] == graphs[1] == graphs[0], graphs  # later images' tiles and chunks compile nothing new
    twin = copy.deepcopy(compiled)  # e.g. an EMA shadow: runs its own weights, not the original's
    with torch.no_grad():
        for p in twin.parameters():
            p.zero_()
        lr = torch.rand(1, 3, 20, 20)
        assert not torch.equal(twin.upsample(lr, (40, 40)), compiled.upsample(lr, (40, 40)))


def test_ciaosr_compiles_its_encoder_only():
    model = compile_model(ciaosr.build_model("edsr-baseline-ciaosr", {"num_blocks": 1}))
    assert "CiaoSRDecoder" in EAGER_QUERIES
    assert "query" not in vars(model.decoder) and "forward" in vars(model.encoder)


def test_compile_is_for_the_torch_backend(tmp_path, capsys):
    from PIL import Image

    src = tmp_path / "in.png"
    Image.new("RGB", (8, 8)).save(src)
    assert main(["upscale", str(src), "--scale", "2", "--backend", "onnxruntime", "--compile"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --compile is for the torch backend (onnxruntime optimises its graphs itself)"]


def test_train_compile_must_be_a_boolean():
    with pytest.raises(ciaosr.CiaosrError, match="train.compile"):
        load_config(REPO / "configs" / "smoke.yaml", ["train.compile=3"])

"""Training samples equal the official pipelines' (LIIF's and mmediting 0.11's as the
official CiaoSR configs use it), given the same image and the same random draws.

The vectors in tests/data/official/batches_*.pt were made by the official code
(benchmarks/official/make_batch_vectors.py says how): each case holds the draws the
official pipeline made and the sample it made from them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ciaosr.data.benchmark import load_rgb
from ciaosr.data.train_dataset import SampleDraws, SRTrainDataset, make_sample, recipe_for_decoder

DATA = Path(__file__).parent / "data" / "official"


def _cases(recipe):
    pack = torch.load(DATA / f"batches_{recipe}.pt", weights_only=True)
    assert pack["meta"]["recipe"] == recipe
    return pack["cases"]


@pytest.mark.parametrize("recipe", ["liif", "mmedit"])
def test_samples_equal_the_official_pipeline(recipe):
    img = load_rgb(DATA / "div2k_0004_crop.png")
    cases = _cases(recipe)
    assert len(cases) == 9
    for case in cases:
        d = case["draws"]
        draws = SampleDraws(d["scale"], d["top"], d["left"], d["flip_rows"], d["flip_cols"], d["transpose"],
                            d["queries"].numpy())
        s = make_sample(img, draws, case["lr_patch"])
        # exact: the LR bytes (PIL's fixed-point bicubic), targets, coordinates and cells
        assert torch.equal(s["lr"], case["lr_u8"].float() / 255), case["seed"]
        assert torch.equal(s["gt"], case["gt_u8"].float() / 255), case["seed"]
        assert torch.equal(s["coord"], case["coord"]), case["seed"]
        assert torch.equal(s["cell"], case["cell"]), case["seed"]
    # the cases cover every flip and both orientations of the transpose
    for key in ("flip_rows", "flip_cols", "transpose"):
        assert {c["draws"][key] for c in cases} == {True, False}


def test_crop_corner_ranges_follow_each_recipe(tmp_path):
    """LIIF draws the corner from 0..H-crop inclusive; mmediting excludes H-crop, so
    an image exactly the crop's size is skipped by mmedit and used by liif."""
    from PIL import Image

    folder = tmp_path / "hr"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (16, 17, 3), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(rng.integers(0, 256, (17, 17, 3), dtype=np.uint8)).save(folder / "b.png")
    liif = SRTrainDataset([folder], lr_patch=8, scales=[2], num_queries=16, recipe="liif")
    assert len(liif) == 2
    warned = []
    mmedit = SRTrainDataset([folder], lr_patch=8, scales=[2], num_queries=16, recipe="mmedit", warn=warned.append)
    assert len(mmedit) == 1 and "a.png" in warned[0]
    tops = {liif.draw(np.random.default_rng(i), (16, 17)).top for i in range(200)}
    assert tops == {0}  # 16 rows, crop 16: the only corner
    tops = {mmedit.draw(np.random.default_rng(i), (17, 17)).top for i in range(200)}
    assert tops == {0}  # 17 rows, crop 16: 0 only (1 is excluded)
    tops = {liif.draw(np.random.default_rng(i), (17, 17)).top for i in range(200)}
    assert tops == {0, 1}


def test_each_family_defaults_to_its_official_recipe():
    assert recipe_for_decoder("ciaosr") == "mmedit"
    assert {recipe_for_decoder(d) for d in ("liif", "lte", "metasr", "itsrn")} == {"liif"}


def test_truncating_float_to_bytes_is_lossless_on_8bit_values():
    """LIIF's ToPILImage turns x = k/255 back into bytes by truncating x*255; for every
    8-bit k that gives k again, so its LR is PIL's bicubic of the original bytes."""
    k = torch.arange(256, dtype=torch.uint8)
    assert torch.equal(k.float().div(255).mul(255).to(torch.uint8), k)


def test_recipe_key_is_checked():
    from ciaosr.errors import CiaosrError
    from ciaosr.training.config import build_config

    assert build_config({})["data"]["recipe"] == "auto"
    assert build_config({}, ["data.recipe=mmedit"])["data"]["recipe"] == "mmedit"
    with pytest.raises(CiaosrError, match="data.recipe.*must be one of"):
        build_config({}, ["data.recipe=basicsr"])
    # the real-world pipeline makes its own samples: a bicubic recipe beside it is a mix-up
    with pytest.raises(CiaosrError, match="data.recipe.*realworld makes its own"):
        build_config({"data": {"pipeline": "realworld", "recipe": "liif"}})

"""Real-world training (docs/real-world.md): the degraded-LR batches, the VGG19 perceptual
loss, the U-Net discriminator, the two stages, resume, EMA and DDP.

The degradation and the VGG19 weights are stand-ins (``realworld_fakes``: a noisy
bilinear downscale; random weights in torchvision's file layout), so these tests check
the training side alone, in seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ciaosr
from ciaosr.cli.main import main
from ciaosr.data.realworld import RealWorldBatch, RealWorldBatcher, RealWorldDataset, RealWorldOps
from ciaosr.errors import CiaosrError
from ciaosr.training import checkpointing as ck
from ciaosr.training.config import build_config, dump_config, load_stages
from ciaosr.training.discriminator import UNetDiscriminatorSN
from ciaosr.training.losses import PerceptualLoss, gan_loss
from ciaosr.training.step import Adversary, realworld_step
from ciaosr.training.trainer import Trainer
from ciaosr.training.vgg import VGG19Features, find_vgg_weights

from conftest import REPO, require_shared
from realworld_fakes import FAKE_OPS, fake_sharpen, vgg_reference, write_vgg_file

SMOKE = REPO / "configs" / "realworld-smoke.yaml"
LAYERS = {2: 0.1, 7: 0.1, 16: 1.0, 25: 1.0, 34: 1.0}


@pytest.fixture(scope="module")
def data_root() -> Path:
    return require_shared("datasets")


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory) -> Path:
    return write_vgg_file(tmp_path_factory.mktemp("vgg"))


@pytest.fixture
def fake_default_ops(monkeypatch):
    """The command line with the stand-in degradation in place of the project's own."""
    monkeypatch.setattr("ciaosr.training.trainer.default_ops", lambda *args, **kwargs: FAKE_OPS)


def overrides(data_root: Path, out: Path, vgg: Path, *extra: str) -> list[str]:
    return [f"data_root={data_root}", "data.train=[T91/HR]", f"output_dir={out}", f"losses.vgg_weights={vgg}",
            "data.num_workers=0", *extra]


def stage(data_root, out, vgg, n: int, *extra: str) -> dict:
    """Stage ``n`` of the smoke config, standing alone (stage 2 from random weights);
    ``name=`` in ``extra`` names its run."""
    names = [e.partition("=")[2] for e in extra if e.startswith("name=")]
    cfg = load_stages(SMOKE, overrides(data_root, out, vgg, *[e for e in extra if not e.startswith("name=")]))[n - 1]
    cfg["init"]["checkpoint"] = None
    if names:
        cfg["name"] = names[-1]
    return cfg


def sets(items: list[str]) -> list[str]:
    return [a for o in items for a in ("--set", o)]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- the VGG19 features --------------------------------------------------------------

def test_vgg_reads_torchvision_file_and_gives_pre_activation_outputs(vgg_file):
    sd = torch.load(vgg_file, weights_only=True)
    vgg = VGG19Features(list(LAYERS), vgg_file)
    assert all(not p.requires_grad for p in vgg.parameters())
    x = torch.rand(2, 3, 32, 32)
    ours = vgg(x)
    ref = vgg_reference(x, sd, set(LAYERS))  # F.conv2d layer by layer from the file's tensors
    assert sorted(ours) == sorted(LAYERS)
    for n in LAYERS:
        assert torch.allclose(ours[n], ref[n], rtol=1e-4, atol=1e-5), n
    assert (ours[2] < 0).any()  # conv1_2 before its ReLU
    # a file of another network: one line naming the tensor that does not fit
    bad = vgg_file.parent / "other.pth"
    torch.save({**sd, "features.7.weight": torch.zeros(1, 1, 3, 3)}, bad)
    with pytest.raises(CiaosrError, match=r"other.pth: features.7.weight has shape \(1, 1, 3, 3\), "
                                          r"expected \(128, 128, 3, 3\)"):
        VGG19Features([7], bad)


def test_vgg_file_from_config_path_or_torch_hub_cache(tmp_path, vgg_file):
    assert find_vgg_weights(str(vgg_file)) == vgg_file
    missing = tmp_path / "nowhere" / "vgg19.pth"
    with pytest.raises(CiaosrError, match=f"vgg19-dcbb9e9d.pth: not found at {missing} "):
        find_vgg_weights(str(missing))
    hub = torch.hub.get_dir()
    try:
        torch.hub.set_dir(str(tmp_path / "hub"))
        where = tmp_path / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
        with pytest.raises(CiaosrError, match=f"not found at {where} .*--vgg PATH"):
            find_vgg_weights(None)
        where.parent.mkdir(parents=True)
        where.write_bytes(vgg_file.read_bytes())
        assert find_vgg_weights(None) == where
    finally:
        torch.hub.set_dir(hub)


def test_missing_vgg_file_is_one_line_before_any_work(tmp_path, capsys, fake_default_ops):
    out = tmp_path / "runs"
    nowhere = tmp_path / "nowhere" / "vgg19-dcbb9e9d.pth"
    argv = ["train", "--config", str(SMOKE), "--vgg", str(nowhere), *sets([f"data_root={REPO}",
                                                                        f"output_dir={out}"])]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: the perceptual loss needs torchvision's ImageNet VGG19 "
                                                   f"weights vgg19-dcbb9e9d.pth: not found at {nowhere}"), err
    assert not out.exists()  # stage 2's check failed before stage 1 started


# --- losses and the discriminator --------------------------------------------------------

def test_perceptual_loss_value_and_gradients(vgg_file):
    """Gradients reach the prediction (so the generator), never the frozen VGG."""
    sd = torch.load(vgg_file, weights_only=True)
    loss_fn = PerceptualLoss(LAYERS, vgg_file)
    pred = torch.rand(2, 3, 16, 16, requires_grad=True)
    target = torch.rand(2, 3, 16, 16)
    loss = loss_fn(pred, target)
    fp, ft = vgg_reference(pred.detach(), sd, set(LAYERS)), vgg_reference(target, sd, set(LAYERS))
    expect = sum(w * (fp[n] - ft[n]).abs().mean() for n, w in LAYERS.items())
    assert loss.item() == pytest.approx(expect.item(), rel=1e-4)
    loss.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in loss_fn.parameters())


def test_gan_loss_is_binary_cross_entropy_on_logits():
    x = torch.randn(2, 1, 8, 8)
    # -log sigmoid(x) = softplus(-x); -log(1 - sigmoid(x)) = softplus(x)
    assert gan_loss(x, real=True).item() == pytest.approx(F.softplus(-x).mean().item(), rel=1e-6)
    assert gan_loss(x, real=False).item() == pytest.approx(F.softplus(x).mean().item(), rel=1e-6)


def test_unet_discriminator_shape_size_and_spectral_norm():
    """(Outside the project, the official UNetDiscriminatorWithSpectralNorm given these
    weights and power-iteration vectors gave the same output to 0.0 in eval mode.)"""
    c = 8
    d = UNetDiscriminatorSN(3, c)
    x = torch.rand(2, 3, 24, 16)
    assert d(x).shape == (2, 1, 24, 16)
    # conv_in, three 4x4 stride-2 convs, three 3x3 up convs, two 3x3 convs (bias-free), conv_out
    expect = (3 * c * 9 + c + 16 * (c * 2 * c + 2 * c * 4 * c + 4 * c * 8 * c)
              + 9 * (8 * c * 4 * c + 4 * c * 2 * c + 2 * c * c) + 2 * 9 * c * c + 9 * c + 1)
    assert sum(p.numel() for p in d.parameters()) == expect
    for _ in range(60):  # power iterations (one per training-mode forward)
        d(x)
    d.eval()
    sn = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d) and m.bias is None]
    assert len(sn) == 8
    for m in sn:  # every normalised weight has spectral norm 1
        assert torch.linalg.matrix_norm(m.weight.flatten(1), ord=2).item() == pytest.approx(1.0, abs=1e-3)
    no_skip = UNetDiscriminatorSN(3, c, skip=False)
    assert no_skip(x).shape == (2, 1, 24, 16)
    with pytest.raises(ValueError, match="multiples of 8"):
        d(torch.rand(1, 3, 20, 16))


# --- the batches ------------------------------------------------------------------------

def _position_image(size: int) -> torch.Tensor:
    """A GT whose channels hold each pixel's row and column (/ 100)."""
    r = torch.arange(size, dtype=torch.float32)
    return torch.stack([r.view(-1, 1).expand(size, size), r.view(1, -1).expand(size, size),
                        torch.full((size, size), 0.5)]) / torch.tensor([100.0, 100.0, 1.0]).view(3, 1, 1)


def _mean_pool_degrade(hr, scales, generator):
    return [F.avg_pool2d(x[None], int(s))[0] for x, s in zip(hr, scales)]


@pytest.mark.parametrize("window", [8, None])
def test_queries_are_the_gt_pixels_of_the_lr_patch(window):
    """At scale 2 with a 2x2 mean as the degradation, LR pixel i covers GT pixels 2i and
    2i+1: the patch's position is read off its values, and every query's coordinate is
    the centre of its GT pixel in the patch's frame."""
    gt = _position_image(32)
    batch = {"gt": gt[None].repeat(3, 1, 1, 1), "scale": torch.tensor([2.0] * 3),
             "seed": torch.tensor([1, 2, 3])}
    ops = RealWorldOps(_mean_pool_degrade, lambda x: x)
    rb = RealWorldBatcher(ops, lr_patch=8, window=window, num_queries=None if window else 40, sharpen=False)(
        batch, torch.device("cpu"))
    q = window * window if window else 40
    assert rb.lr.shape == (3, 3, 8, 8) and rb.coord.shape == (3, q, 2) and rb.target.shape == (3, q, 3)
    assert torch.equal(rb.target, rb.real)  # no sharpening
    assert torch.allclose(rb.cell, torch.full_like(rb.cell, 2 / 16))  # 2 / (8 LR pixels x 2)
    for b in range(3):
        top = round((float(rb.lr[b, 0, 0, 0]) * 100 - 0.5) / 2)
        left = round((float(rb.lr[b, 1, 0, 0]) * 100 - 0.5) / 2)
        rows = (rb.target[b, :, 0] * 100).round()
        cols = (rb.target[b, :, 1] * 100).round()
        expect = torch.stack([(rows + 0.5) / 2 - top, (cols + 0.5) / 2 - left], -1) / 8 * 2 - 1
        assert torch.allclose(rb.coord[b], expect, atol=1e-6)
        assert rb.coord[b].abs().max() < 1  # inside the patch
        if window:
            grid = torch.stack([rows, cols], -1).view(window, window, 2)
            assert torch.equal(grid[:, :, 0], grid[:, :1, 0].expand(-1, window))  # one row per line
            assert torch.equal(grid[:, :, 0] - grid[0, 0, 0], torch.arange(window).view(-1, 1).float().expand(-1, window))
            assert torch.equal(grid[:, :, 1] - grid[0, 0, 1], torch.arange(window).float().expand(window, -1))
            assert rb.images(rb.target)[b, 0, 3, 5] * 100 == pytest.approx(float(rows[0]) + 3)
        else:
            assert len({(int(r), int(c)) for r, c in zip(rows, cols)}) == 40  # distinct pixels


def test_one_degradation_call_per_batch_gives_the_same_crops():
    """``data.degrade_per_sample: false``: one call for the batch; with a degradation
    that draws nothing, the batch is the one the per-sample calls give."""
    calls = []

    def counted(hr, scales, generator):
        calls.append(hr.shape[0])
        return _mean_pool_degrade(hr, scales, generator)

    batch = {"gt": torch.rand(3, 3, 32, 32), "scale": torch.tensor([2.0, 4.0, 1.0]), "seed": torch.tensor([4, 5, 6])}
    ops = RealWorldOps(counted, fake_sharpen)
    a = RealWorldBatcher(ops, lr_patch=8, window=8)(batch, torch.device("cpu"))
    b = RealWorldBatcher(ops, lr_patch=8, window=8, per_sample=False)(batch, torch.device("cpu"))
    assert calls == [1, 1, 1, 3]
    assert all(torch.equal(getattr(a, k), getattr(b, k)) for k in ("lr", "coord", "cell", "target", "real"))


def test_batches_at_any_scale_and_the_targets(data_root):
    """Non-integer scales; the window fills the patch at scale 1; the target is the
    sharpened GT, the real sample the plain one, at the same pixels."""
    ds = RealWorldDataset([data_root / "T91" / "HR"], seed=5, gt_size=48, scales=[1.0, 2.7, 3.9])
    samples = [ds[k] for k in range(6)]
    batch = {key: torch.stack([s[key] for s in samples]) for key in samples[0]}
    rb = RealWorldBatcher(FAKE_OPS, lr_patch=12, window=12)(batch, torch.device("cpu"))
    assert rb.lr.shape == (6, 3, 12, 12) and rb.target.shape == (6, 144, 3)
    assert rb.coord.abs().max() < 1
    sharp = fake_sharpen(batch["gt"])
    for b in range(6):
        s = float(batch["scale"][b])
        h = round(48 / s)
        assert torch.allclose(rb.cell[b], torch.full((144, 2), 2 / (12 * 48 / h)))
        # find the window in the GT by its plain values; the target is the sharpened GT there
        real = rb.images(rb.real)[b]
        hits = [(y, x) for y in range(48 - 11) for x in range(48 - 11)
                if torch.equal(batch["gt"][b, :, y:y + 12, x:x + 12], real)]
        assert len(hits) >= 1
        y, x = hits[0]
        assert torch.equal(rb.images(rb.target)[b], sharp[b, :, y:y + 12, x:x + 12])
        if s == 1.0:  # the patch's GT pixels are exactly the window
            assert torch.allclose(rb.coord[b, 0], torch.tensor([-1 + 1 / 12] * 2), atol=1e-6)


def test_realworld_stream_is_deterministic(data_root):
    t91 = data_root / "T91" / "HR"
    ds = RealWorldDataset([t91], seed=3, gt_size=64)
    s = ds[7]
    assert s["gt"].shape == (3, 64, 64) and 0 <= s["gt"].min() and s["gt"].max() <= 1
    assert 1 <= float(s["scale"]) < 4
    again = RealWorldDataset([t91], seed=3, gt_size=64)[7]
    assert all(torch.equal(s[k], again[k]) for k in s)
    assert ds[8]["seed"] != s["seed"]
    with pytest.raises(CiaosrError, match=r"no training image is at least 4000x4000 pixels \(data.gt_size\)"):
        with pytest.warns(UserWarning):
            RealWorldDataset([t91], gt_size=4000)


# --- configs ----------------------------------------------------------------------------

@pytest.mark.parametrize("data, message", [
    ({"losses": {"gan": 0.1}}, "losses.perceptual and losses.gan need data.pipeline: realworld"),
    ({"data": {"query_window": 16}}, "data.query_window needs data.pipeline: realworld"),
    ({"data": {"pipeline": "realworld", "lr_patch": 16, "gt_size": 64}, "losses": {"perceptual": 1}},
     "set data.query_window"),
    ({"data": {"pipeline": "realworld", "lr_patch": 16, "gt_size": 64, "query_window": 24}},
     r"data.query_window must be in 1..data.lr_patch \(16\)"),
    ({"data": {"pipeline": "realworld", "lr_patch": 16, "gt_size": 64, "query_window": 12}, "losses": {"gan": 1}},
     "multiple of 8"),
    ({"data": {"pipeline": "realworld", "lr_patch": 16, "gt_size": 64, "query_window": 8},
      "losses": {"perceptual": 1}}, "too small for VGG19 layer 34"),
    ({"data": {"pipeline": "realworld", "lr_patch": 16, "gt_size": 60}}, "smaller than data.lr_patch 16"),
    ({"data": {"pipeline": "realworld", "lr_patch": 16, "gt_size": 64, "num_queries": 300}},
     "data.num_queries must be at most"),
    ({"losses": {"pixel": 0}}, "the losses are all zero"),
    ({"losses": {"perceptual_layers": {40: 1}}}, "losses.perceptual_layers"),
    ({"data": {"pipeline": "jpeg"}}, "'data.pipeline' must be one of bicubic, realworld"),
])
def test_realworld_config_checks(data, message):
    with pytest.raises(CiaosrError, match=message):
        build_config(data)


def test_layer_weights_from_yaml_and_set():
    cfg = build_config({}, ["losses.perceptual_layers.7=0.5"])
    assert cfg["losses"]["perceptual_layers"] == {2: 0.1, 7: 0.5, 16: 1.0, 25: 1.0, 34: 1.0}
    assert build_config(__import__("yaml").safe_load(dump_config(cfg)))["losses"] == cfg["losses"]


def test_shipped_realworld_configs_prepare(data_root, tmp_path, vgg_file):
    files = sorted((REPO / "configs").glob("realworld-*.yaml"))
    names = {p.stem for p in files}
    for enc in ("edsr-baseline", "rdn", "swinir"):
        assert {f"realworld-{enc}-ciaosr-l1", f"realworld-{enc}-ciaosr-gan"} <= names
    for path in files:
        # the configs read the fetched layout (DIV2K-train/HR, Flickr2K/HR); the shared samples stand in
        data = ([f"data_root={REPO}"] if path.stem == "realworld-smoke"
                else [f"data_root={data_root}", "data.train=[DIV2K-mini/HR, Flickr2K-mini/HR]"])
        configs = load_stages(path, [*data, f"output_dir={tmp_path}", "data.cache=false",
                                     f"losses.vgg_weights={vgg_file}"])
        for cfg in configs:
            gan = cfg["losses"]["gan"] > 0
            assert cfg["model"]["decoder_args"] == {**cfg["model"]["decoder_args"], "non_local": False,
                                                    "residual": False}
            assert cfg["data"]["pipeline"] == "realworld" and cfg["train"]["ema_decay"] == 0.999
            assert cfg["optimizer"]["betas"] == [0.9, 0.99] and cfg["scheduler"]["type"] == "constant"
            if path.stem == "realworld-smoke":
                continue
            if gan:
                assert cfg["optimizer"]["lr"] == cfg["discriminator"]["lr"] == 1e-4
                assert cfg["losses"] == {"pixel": 1.0, "perceptual": 1.0, "perceptual_layers": LAYERS, "gan": 0.1,
                                         "vgg_weights": str(vgg_file)}
                assert cfg["data"]["query_window"] == 64 and cfg["train"]["iterations"] == 400_000
                l1 = path.with_name(path.name.replace("-gan", "-l1")).stem
                assert cfg["init"]["checkpoint"] == f"runs/{l1}/last.safetensors"
                cfg["init"]["checkpoint"] = None
            else:
                assert cfg["optimizer"]["lr"] == 2e-4 and cfg["losses"]["perceptual"] == cfg["losses"]["gan"] == 0
                assert cfg["data"]["num_queries"] == 4096 and cfg["train"]["iterations"] == 1_000_000
            assert (cfg["data"]["gt_size"], cfg["data"]["lr_patch"], cfg["train"]["batch_size"]) == (256, 64, 48)
            trainer = Trainer(cfg, realworld_ops=FAKE_OPS)  # every check passes; nothing is written
            assert (trainer.discriminator is not None) == gan and trainer.model.spec["name"] == cfg["model"]["name"]
    assert not any(tmp_path.iterdir())


# --- training ---------------------------------------------------------------------------

def test_gan_step_updates_both_networks_not_vgg(data_root, tmp_path, vgg_file):
    cfg = stage(data_root, tmp_path, vgg_file, 2, "train.iterations=2")
    trainer = Trainer(cfg, realworld_ops=FAKE_OPS)
    g0 = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    d0 = {k: v.clone() for k, v in trainer.discriminator.state_dict().items()}
    vgg0 = {k: v.clone() for k, v in trainer.perceptual.state_dict().items()}
    result = trainer.run()
    assert result.step == 2 and np.isfinite(result.last_loss)
    changed = lambda before, module: [k for k, v in module.state_dict().items()  # noqa: E731
                                      if v.is_floating_point() and not torch.equal(before[k], v)]
    assert len(changed(g0, trainer.model)) == len([k for k, v in g0.items() if v.is_floating_point()])
    d_params = [n for n, _ in trainer.discriminator.named_parameters()]
    assert set(d_params) <= set(changed(d0, trainer.discriminator))  # every weight of D moved
    assert changed(vgg0, trainer.perceptual) == []
    assert all(p.grad is None for p in trainer.perceptual.parameters())
    rows = read_jsonl(tmp_path / "realworld-smoke-gan" / "metrics.jsonl")
    assert {"loss_pixel", "loss_perceptual", "loss_gan", "loss_d_real", "loss_d_fake"} <= set(rows[-1])
    state = ck.load_state(ck.latest_state(tmp_path / "realworld-smoke-gan"))
    assert same(state["discriminator"]["weights"], trainer.discriminator.state_dict())


def test_realworld_step_gradients_reach_the_generator_only(vgg_file):
    """One generator step: every generator weight gets a gradient, the discriminator
    none (frozen for it) and the VGG none; then the discriminator's own step."""
    torch.manual_seed(0)
    model = ciaosr.build_model("edsr-baseline-ciaosr", {"mid_channels": 8, "num_blocks": 1},
                               {"hidden": [16], "non_local": False, "residual": False})
    d = UNetDiscriminatorSN(3, 8)
    percep = PerceptualLoss(LAYERS, vgg_file)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    grads = {}

    class Spy(torch.optim.Adam):  # records the discriminator's gradients when it steps
        def step(self, closure=None):
            grads["d"] = [p.grad is not None and p.grad.abs().sum() > 0 for p in d.parameters()]
            grads["g_at_d_step"] = [p.grad for p in model.parameters()]
            return super().step(closure)

    coord = torch.rand(2, 256, 2) * 2 - 1
    batch = RealWorldBatch(torch.rand(2, 3, 16, 16), coord, torch.full((2, 256, 2), 2 / 32),
                           torch.rand(2, 256, 3), torch.rand(2, 256, 3), 16)
    orig_step = opt.step

    def g_step(*a, **k):
        grads["g"] = [p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters()]
        grads["d_at_g_step"] = [p.grad for p in d.parameters()]
        return orig_step(*a, **k)

    opt.step = g_step
    terms = realworld_step(model, model, opt, batch, {"pixel": 1.0, "perceptual": 1.0, "gan": 0.1},
                           perceptual=percep, adversary=Adversary(d, d, Spy(d.parameters(), lr=1e-4)))
    assert all(grads["g"]) and all(g is None for g in grads["d_at_g_step"])
    assert all(grads["d"])
    assert all(p.grad is None for p in percep.parameters())
    assert all(p.requires_grad for p in d.parameters())  # unfrozen again
    expect = terms["pixel"] + terms["perceptual"] + 0.1 * terms["gan"]
    assert terms["loss"].item() == pytest.approx(expect.item(), rel=1e-6)


def test_two_stages_from_one_command(tmp_path, vgg_file, capsys, fake_default_ops):
    """The smoke config as shipped runs both stages; stage 2 starts from stage 1's
    export; a second run with --resume skips both."""
    out = tmp_path / "runs"
    argv = ["train", "--config", str(SMOKE), "--vgg", str(vgg_file),
            *sets([f"data_root={REPO}", f"output_dir={out}"])]
    t0 = time.time()
    assert main(argv) == 0
    assert time.time() - t0 < 120
    err = capsys.readouterr().err
    assert "stage 1 of 2 (realworld-smoke-l1)" in err and "stage 2 of 2 (realworld-smoke-gan)" in err
    l1, gan = out / "realworld-smoke-l1", out / "realworld-smoke-gan"
    assert [s for s, _ in ck.list_states(l1)] == [6] and [s for s, _ in ck.list_states(gan)] == [6]
    assert "discriminator" not in ck.load_state(ck.latest_state(l1))
    assert "loss_gan" in read_jsonl(gan / "metrics.jsonl")[-1]
    assert "loss_gan" not in read_jsonl(l1 / "metrics.jsonl")[-1]
    # stage 2's starting weights are stage 1's export (its EMA weights)
    cfg2 = load_stages(SMOKE, [f"data_root={REPO}", f"output_dir={out}", f"losses.vgg_weights={vgg_file}"])[1]
    assert cfg2["init"]["checkpoint"] == str(l1 / "last.safetensors")
    cfg2["name"] = "again"
    start = Trainer(cfg2, realworld_ops=FAKE_OPS).model.state_dict()
    exported = ciaosr.load_model(l1 / "last.safetensors")
    assert same(start, exported.state_dict())
    assert same(exported.state_dict(), ck.load_state(ck.latest_state(l1))["ema"]["weights"])
    final = ciaosr.load_model(gan / "last.safetensors")
    assert final.spec["decoder_args"]["residual"] is False and not final.residual
    # again: both finished, nothing to do
    assert main([*argv, "--resume"]) == 0
    err = capsys.readouterr().err
    assert err.count("finished already, skipped") == 2
    assert [s for s, _ in ck.list_states(gan)] == [6]


def test_smoke_config_with_the_project_degradations(tmp_path, vgg_file, capsys):
    """The shipped smoke config end to end with ``ciaosr.data.degradations`` (the
    default), both stages, well under two minutes on the CPU."""
    out = tmp_path / "runs"
    t0 = time.time()
    assert main(["train", "--config", str(SMOKE), "--vgg", str(vgg_file),
                 *sets([f"data_root={REPO}", f"output_dir={out}"])]) == 0
    assert time.time() - t0 < 120
    assert "real-world pipeline (realesrgan degradations)" in capsys.readouterr().err
    for name in ("realworld-smoke-l1", "realworld-smoke-gan"):
        rows = [r for r in read_jsonl(out / name / "metrics.jsonl") if "loss" in r]
        assert [r["step"] for r in rows] == [2, 4, 6] and all(np.isfinite(r["loss"]) for r in rows)
        model = ciaosr.load_model(out / name / "last.safetensors")
        assert torch.isfinite(model.upsample(torch.rand(1, 3, 12, 12), (40, 40))).all()


def test_a_stopped_stage_and_the_next_continue_with_resume(tmp_path, vgg_file, capsys, fake_default_ops):
    out = tmp_path / "runs"
    argv = ["train", "--config", str(SMOKE), "--vgg", str(vgg_file),
            *sets([f"data_root={REPO}", f"output_dir={out}"])]
    assert main([*argv, "--set", "train.max_minutes=1e-6"]) == 0  # stage 1 stops after its first step
    err = capsys.readouterr().err
    assert "stage 1 of 2 (realworld-smoke-l1) stopped; to continue with it and the stages after it, run the " \
           "same command with --resume" in err and "stage 2 of 2" not in err
    assert [s for s, _ in ck.list_states(out / "realworld-smoke-l1")] == [1]
    assert not (out / "realworld-smoke-gan").exists()
    assert "already holds training states" in (main(argv), capsys.readouterr().err)[1]  # not without --resume
    assert main([*argv, "--resume"]) == 0
    err = capsys.readouterr().err
    assert "resuming" in err and "at step 1" in err and "stage 2 of 2" in err
    assert [s for s, _ in ck.list_states(out / "realworld-smoke-l1")] == [6]
    assert [s for s, _ in ck.list_states(out / "realworld-smoke-gan")] == [6]
    assert "give --resume without a path" in (main([*argv, "--resume", str(out)]), capsys.readouterr().err)[1]


@pytest.mark.parametrize("per_sample", [True, False])
def test_resume_inside_stage_two_is_exact(data_root, tmp_path, vgg_file, per_sample):
    """4 steps straight == 2 steps, Ctrl-C, resume 2 more: generator, EMA, discriminator
    and both optimisers bit for bit (degradations drawn per sample or per batch)."""
    def cfg(name):
        return stage(data_root, tmp_path, vgg_file, 2, "train.iterations=4", "train.log_every=1", f"name={name}",
                     f"data.degrade_per_sample={str(per_sample).lower()}")

    straight = Trainer(cfg("straight"), realworld_ops=FAKE_OPS).run()
    assert straight.step == 4

    def interrupt(trainer, step):
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)

    first = Trainer(cfg("cut"), realworld_ops=FAKE_OPS, step_callback=interrupt).run()
    assert (first.step, first.interrupted) == (2, signal.SIGINT)
    second = Trainer(cfg("cut"), realworld_ops=FAKE_OPS, resume=True).run()
    assert second.step == 4
    a = ck.load_state(ck.latest_state(tmp_path / "straight"))
    b = ck.load_state(ck.latest_state(tmp_path / "cut"))
    assert same(a["model"], b["model"]) and same(a["ema"]["weights"], b["ema"]["weights"])
    assert same(a["discriminator"]["weights"], b["discriminator"]["weights"])
    for key in ("optimizer", ):
        for sa, sb in zip(a[key]["state"].values(), b[key]["state"].values()):
            assert torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])
    da, db = a["discriminator"]["optimizer"]["state"], b["discriminator"]["optimizer"]["state"]
    assert len(da) == len(db) > 0 and all(torch.equal(da[i]["exp_avg"], db[i]["exp_avg"]) for i in da)
    assert a["discriminator"]["scheduler"]["last_epoch"] == b["discriminator"]["scheduler"]["last_epoch"] == 4
    la = [{k: v for k, v in r.items() if k.startswith("loss")} for r in read_jsonl(tmp_path / "straight" / "metrics.jsonl")]
    lb = [{k: v for k, v in r.items() if k.startswith("loss")} for r in read_jsonl(tmp_path / "cut" / "metrics.jsonl")]
    assert la == lb and len(la) == 4


def test_a_stage_one_state_does_not_resume_as_stage_two(data_root, tmp_path, vgg_file):
    Trainer(stage(data_root, tmp_path, vgg_file, 1, "train.iterations=1", "name=x"), realworld_ops=FAKE_OPS).run()
    with pytest.raises(CiaosrError, match="holds no discriminator"):
        Trainer(stage(data_root, tmp_path, vgg_file, 2, "name=x", "train.iterations=2"), realworld_ops=FAKE_OPS,
                resume=True)


def test_torchrun_two_processes_match_one_in_stage_two(data_root, tmp_path, vgg_file, monkeypatch):
    """2 gloo processes x batch 1 == 1 process x batch 2: the same samples (each one's
    degradation seeded by its own number), averaged gradients for both networks.

    oneDNN is off on both sides: its convolutions pick algorithms by batch size, and on
    an AMD EPYC (AVX-512) the VGG19 of the perceptual loss then gave gradients that
    differ in the last bits between batch 1 and 2; Adam's first steps turn such noise in
    near-zero gradient elements into steps of up to the learning rate (1.8e-4 apart
    after two steps). The native kernels compute each sample alone."""
    monkeypatch.setattr(torch.backends.mkldnn, "enabled", False)
    cfg = stage(data_root, tmp_path, vgg_file, 2, "train.iterations=2", "train.batch_size=1", "name=ddp")
    cfg_file = tmp_path / "stage2.yaml"
    cfg_file.write_text(dump_config(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CIAOSR_TEST_NO_ONEDNN": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(REPO / "tests" / "realworld_ddp_worker.py"), str(cfg_file)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = ck.load_state(ck.latest_state(tmp_path / "ddp"))
    assert (ddp["world_size"], ddp["samples_seen"]) == (2, 4)
    single_cfg = stage(data_root, tmp_path, vgg_file, 2, "train.iterations=2", "train.batch_size=2", "name=single")
    Trainer(single_cfg, realworld_ops=FAKE_OPS).run()
    one = ck.load_state(ck.latest_state(tmp_path / "single"))
    for a, b in ((ddp["model"], one["model"]), (ddp["discriminator"]["weights"], one["discriminator"]["weights"])):
        worst = max((a[k].double() - b[k].double()).abs().max().item() for k in a)
        assert worst < 1e-5, worst

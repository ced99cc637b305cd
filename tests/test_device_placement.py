"""Device placement without a GPU: every model's encode and decode, the tiled upscale and
the training steps (forward, backward, optimiser, EMA, the real-world batches and the
GAN stage) run with every tensor on a stand-in device (tests/fake_device.py: ``meta``
under a dispatch mode that fails on any CPU tensor mixed in). A tensor made without
``device=`` would crash a user's first CUDA run; here it fails the test, on the CPU.

What cannot run this way, and why:

* the CUDA-only branches (``device.type == "cuda"``: tile sizes from free GPU memory,
  cuDNN flags, ``torch.cuda.synchronize``, NCCL): they need the CUDA runtime; they run in
  tests/test_cuda.py on a lent GPU (benchmarks/gpu_run.sh);
* the fp16 GradScaler: it is built for a real device type;
* autocast: it has no meta variant, so dtype mixing under bf16/fp16 autocast is checked
  on the CPU instead (the last tests here): every model's forward and a training step
  under CPU autocast in both dtypes, where a product of mixed dtypes fails as on a GPU;
* random generators bound to the device (the real-world degradations draw from a
  ``torch.Generator`` on the training device): there is no meta generator, so those
  draws come from a CPU generator here and are moved to the device, which
  ``data.degradations.draws`` supports too;
* what depends on tensor values (data loading, metrics, validation, image files): the
  stand-in has none, so it runs on the CPU as everywhere else.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ciaosr
from ciaosr.data import realworld
from ciaosr.inference.tiling import tiled_upsample
from ciaosr.models.registry import decoders, encoders, list_models
from ciaosr.training.discriminator import UNetDiscriminatorSN
from ciaosr.training.ema import EMA
from ciaosr.training.losses import RELEASED_LAYER_WEIGHTS, PerceptualLoss
from ciaosr.training.schedule import make_optimizer
from ciaosr.training.step import Adversary, optimisation_step, realworld_step

from fake_device import DEVICE, FakeGpu, MixedDevices

ADAM = {"type": "adam", "lr": 1e-4, "betas": [0.9, 0.999], "weight_decay": 0.0}
# Small variants (the placement does not depend on the width or depth).
ENCODER_ARGS = {"edsr": {"num_blocks": 2}, "edsr-baseline": {"num_blocks": 2},
                "rdn": {"num_blocks": 2, "num_layers": 2}, "swinir": {"depths": [2], "num_heads": [2], "embed_dim": 12,
                                                                     "window_size": 4}}
NAMES = list_models()  # every encoder with every decoder that runs on it
# Under autocast: every decoder on one encoder, every encoder with one decoder.
AUTOCAST_NAMES = sorted({f"edsr-baseline-{d}" for d in decoders()} | {f"{e}-liif" for e in encoders()})
assert set(AUTOCAST_NAMES) <= set(NAMES)


def build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    encoder = next(e for e in sorted(encoders(), key=len, reverse=True) if name.startswith(e + "-"))
    return ciaosr.build_model(name, ENCODER_ARGS[encoder])


def queries(b: int, n: int, device=DEVICE) -> tuple[torch.Tensor, torch.Tensor]:
    coord = torch.rand(b, n, 2) * 2 - 1
    cell = torch.full((b, n, 2), 2 / 50)
    return coord.to(device), cell.to(device)


def test_the_stand_in_fails_on_a_cpu_tensor_mixed_in():
    x = torch.ones(4, 3).to(DEVICE)
    with FakeGpu():
        with pytest.raises(MixedDevices):
            x + torch.ones(4, 3)
        with pytest.raises(MixedDevices):  # the meta kernel alone lets this one through
            x @ torch.ones(3, 2)
        assert (x * torch.tensor(2.0)).device == DEVICE  # a 0-dim CPU scalar, as CUDA takes
        back = (x + 1).cpu()  # an explicit transfer
        assert back.device.type == "cpu" and back.shape == (4, 3)
        assert (x.sum() > 0).item() == 1


@pytest.mark.parametrize("name", NAMES)
def test_every_model_encodes_and_decodes_on_the_device(name):
    model = build(name).eval().to(DEVICE)
    with FakeGpu(), torch.no_grad():
        lr = torch.rand(2, 3, 10, 12).to(DEVICE)
        out = model.upsample(lr, (25, 31), chunk=400)  # whole image, in chunks of queries
        assert out.device == DEVICE and out.shape == (2, 3, 25, 31)
        coord, cell = queries(2, 100)
        assert model(lr, coord, cell).shape == (2, 100, 3)
        tiled = tiled_upsample(model, lr, (22, 27), tile=8, overlap=2, chunk=300)
        assert tiled.device.type == "cpu" and tiled.shape == (2, 3, 22, 27)  # collected on the CPU


@pytest.mark.parametrize("name", ["edsr-baseline-liif", "edsr-baseline-ciaosr", "swinir-lte", "rdn-itsrn",
                                  "edsr-baseline-metasr"])
def test_a_training_step_with_ema_on_the_device(name):
    model = build(name).train().to(DEVICE)
    ema = EMA(model, 0.999)
    opt = make_optimizer(model.parameters(), ADAM)
    with FakeGpu():
        lr = torch.rand(2, 3, 8, 8).to(DEVICE)
        coord, cell = queries(2, 32)
        gt = torch.rand(2, 32, 3).to(DEVICE)
        loss = optimisation_step(model, model, opt, (lr, coord, cell, gt), clip=1.0,
                                 params=list(model.parameters()))
        ema.update(model)
    assert loss.device == DEVICE
    assert all(p.device == DEVICE for p in ema.model.parameters())
    state = opt.state[next(model.parameters())]
    assert state["exp_avg"].device == DEVICE


def test_the_realworld_batches_and_gan_stage_on_the_device(monkeypatch):
    """The real-world recipe's degradations on the device (data.realworld, the project's
    own pipeline), then a generator step with L1, perceptual and GAN losses and one
    discriminator step."""
    # No generator on meta: draw on the CPU and move the draws (data.degradations.draws
    # supports that too).
    monkeypatch.setattr(realworld, "_generator", lambda seed, device: torch.Generator().manual_seed(seed))
    batcher = realworld.RealWorldBatcher(realworld.default_ops(), lr_patch=32, window=32)  # VGG19 needs 32 x 32
    rng = np.random.default_rng(0)
    batch = {"gt": torch.from_numpy(rng.random((2, 3, 112, 112), dtype=np.float32)),
             "scale": torch.tensor([2.0, 3.0]), "seed": torch.tensor([1, 2]), "index": torch.tensor([0, 1])}
    model = build("edsr-baseline-ciaosr").train().to(DEVICE)
    disc = UNetDiscriminatorSN(channels=8).to(DEVICE)
    adversary = Adversary(disc, disc, make_optimizer(disc.parameters(), ADAM))
    perceptual = PerceptualLoss(RELEASED_LAYER_WEIGHTS).to(DEVICE)
    opt = make_optimizer(model.parameters(), ADAM)
    with FakeGpu():
        rw = batcher(batch, DEVICE)
        assert rw.lr.device == rw.coord.device == rw.target.device == DEVICE
        terms = realworld_step(model, model, opt, rw, {"pixel": 1.0, "perceptual": 1.0, "gan": 0.1},
                               perceptual=perceptual, adversary=adversary)
    assert set(terms) == {"loss", "pixel", "perceptual", "gan", "d_real", "d_fake"}
    assert all(t.device == DEVICE for t in terms.values())
    assert adversary.opt.state[next(disc.parameters())]["exp_avg"].device == DEVICE


# --- dtype mixing under autocast, on the CPU ------------------------------------------

@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", AUTOCAST_NAMES)
def test_every_model_under_autocast(name, dtype):
    model = build(name).eval()
    lr = torch.rand(1, 3, 8, 10)
    with torch.no_grad(), torch.autocast("cpu", dtype=dtype):
        out = model.upsample(lr, (20, 25), chunk=300)
    assert out.shape == (1, 3, 20, 25) and torch.isfinite(out).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_training_step_under_autocast(dtype):
    model = build("edsr-baseline-ciaosr").train()
    opt = make_optimizer(model.parameters(), ADAM)
    lr, (coord, cell) = torch.rand(2, 3, 8, 8), queries(2, 32, "cpu")
    with torch.autocast("cpu", dtype=dtype):
        pred = model(lr, coord, cell)
    loss = F.l1_loss(pred.float(), model.normalise_target(torch.rand(2, 32, 3)))
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert all(p.grad is None or p.grad.dtype == torch.float32 for p in model.parameters())

"""The CUDA paths: upscaling (whole and tiled, every precision), evaluation, the CLI's
``--device cuda`` and a few training steps (fp32, bf16, fp16 with its GradScaler, resume).

Skipped without a GPU; ``pytest -m cuda`` selects them (benchmarks/gpu_run.sh runs them
on a lent GPU). Everything is built here (synthetic images, the shipped default model,
small random models), so no shared data is needed. GPU and CPU results are compared by
PSNR, not bit for bit: cuDNN computes fp32 convolutions in TF32 by default.
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import ciaosr
from ciaosr.cli.main import main
from ciaosr.evaluation.runner import evaluate
from ciaosr.inference.tiling import plan_tiles
from ciaosr.training import checkpointing as ck
from ciaosr.training.config import load_config
from ciaosr.training.trainer import Trainer

from conftest import REPO

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

SMOKE = REPO / "configs" / "smoke.yaml"


def smooth_image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """(3, h, w) in [0, 1]: random colours at 1/8 resolution, bicubically enlarged."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 3, max(h // 8, 2), max(w // 8, 2), generator=g)
    return F.interpolate(small, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)[0]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.double() - b.double()) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def models() -> dict:
    torch.manual_seed(0)
    return {"liif (shipped)": ciaosr.load_model("edsr-baseline-liif"),
            "ciaosr": ciaosr.build_model("edsr-baseline-ciaosr"),
            "lte": ciaosr.build_model("edsr-baseline-lte", {"num_blocks": 4}),
            "itsrn": ciaosr.build_model("edsr-baseline-itsrn", {"num_blocks": 4})}


@pytest.mark.parametrize("name", ["liif (shipped)", "ciaosr", "lte", "itsrn"])
def test_upscale_on_cuda_matches_cpu(name):
    model = models()[name].eval()
    x = smooth_image(40, 52)
    cpu = ciaosr.upscale(x, scale=2.5, model=copy.deepcopy(model), device="cpu")
    gpu = ciaosr.upscale(x, scale=2.5, model=copy.deepcopy(model), device="cuda")
    assert gpu.shape == cpu.shape == (3, 100, 130) and gpu.device.type == "cpu"  # returned where it came from
    assert psnr(gpu, cpu) > 45, psnr(gpu, cpu)


@pytest.mark.parametrize("precision, floor", [("bf16", 30), ("fp16", 35)])
def test_half_precisions_on_cuda_stay_close_to_fp32(precision, floor):
    model = ciaosr.load_model("edsr-baseline-liif")
    x = smooth_image(48, 48, seed=1)
    ref = ciaosr.upscale(x, scale=3, model=model, device="cuda")
    half = ciaosr.upscale(x, scale=3, model=model, device="cuda", precision=precision)
    assert half.dtype == torch.float32 and torch.isfinite(half).all()
    assert not torch.equal(half, ref)  # autocast really ran
    assert psnr(half, ref) > floor, psnr(half, ref)


def test_tiled_upscale_on_cuda_matches_cpu_and_plans_from_gpu_memory():
    torch.manual_seed(0)
    model = ciaosr.build_model("edsr-baseline-ciaosr", {"num_blocks": 2}).eval()
    x = smooth_image(70, 90, seed=2)
    cpu = ciaosr.upscale(x, scale=2, model=copy.deepcopy(model), device="cpu", tile=32)
    gpu = ciaosr.upscale(x, scale=2, model=copy.deepcopy(model), device="cuda", tile=32)
    assert psnr(gpu, cpu) > 45, psnr(gpu, cpu)
    plan = plan_tiles(model.to("cuda"), torch.device("cuda"), None)  # from free GPU memory
    assert plan.tile >= 32


def test_cli_upscale_with_device_cuda(tmp_path):
    src = tmp_path / "in.png"
    arr = (smooth_image(36, 44, seed=3).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(arr).save(src)
    outs = {}
    for device in ("cpu", "cuda"):
        outs[device] = tmp_path / f"{device}.png"
        assert main(["upscale", str(src), "--scale", "3", "--device", device, "-o", str(outs[device])]) == 0
    a, b = (torch.from_numpy(np.asarray(Image.open(outs[d]), dtype=np.float64) / 255) for d in ("cpu", "cuda"))
    assert a.shape == b.shape == (108, 132, 3)
    assert psnr(a, b) > 45, psnr(a, b)


def test_eval_on_cuda_matches_cpu(tmp_path, capsys):
    hr = tmp_path / "Syn" / "HR"
    hr.mkdir(parents=True)
    for k in range(2):
        arr = (smooth_image(96, 120, seed=10 + k).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(arr).save(hr / f"img{k}.png")
    cpu = evaluate("edsr-baseline-liif", tmp_path, ["Syn"], [2, 4], metrics=["psnr"], device="cpu", progress=False)
    js = tmp_path / "cuda.json"
    assert main(["eval", "--model", "edsr-baseline-liif", "--data-root", str(tmp_path), "--datasets", "Syn",
                 "--scales", "2", "4", "--metrics", "psnr", "--device", "cuda", "--json", str(js)]) == 0
    gpu = json.loads(js.read_text())
    for s in ("2", "4"):
        a, b = cpu["results"]["Syn"][s], gpu["results"]["Syn"][s]
        assert abs(a["psnr"] - b["psnr"]) < 0.01, (s, a["psnr"], b["psnr"])


def training_folder(tmp_path):
    folder = tmp_path / "train"
    folder.mkdir()
    for k in range(4):
        arr = (smooth_image(96, 96, seed=20 + k).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(arr).save(folder / f"t{k}.png")
    return folder


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_training_steps_on_cuda_and_resume(tmp_path, precision):
    folder = training_folder(tmp_path)
    out = tmp_path / "runs"
    overrides = [f"data_root={tmp_path}", f"output_dir={out}", f"data.train=[{folder}]", "val.datasets=[]",
                 "device=cuda", f"train.precision={precision}", "train.batch_size=4", "train.log_every=1",
                 "data.num_workers=0", "train.progress=false", "train.iterations=3", "train.grad_clip=1.0"]
    result = Trainer(load_config(SMOKE, overrides)).run()
    assert result.step == 3 and np.isfinite(result.last_loss)
    state = ck.load_state(ck.latest_state(out / "smoke"))
    assert "rng_cuda" in state and (state["scaler"] is not None) == (precision == "fp16")
    resumed = Trainer(load_config(SMOKE, [*overrides[:-2], "train.iterations=5", "train.grad_clip=1.0"]),
                      resume=True).run()
    assert resumed.step == 5 and np.isfinite(resumed.last_loss)
    model = ciaosr.load_model(out / "smoke" / "last.safetensors")
    sr = model.upsample(smooth_image(12, 12)[None], (30, 30))
    assert torch.isfinite(sr).all()


def test_time_budget_on_cuda(tmp_path):
    folder = training_folder(tmp_path)
    out = tmp_path / "runs"
    overrides = [f"data_root={tmp_path}", f"output_dir={out}", f"data.train=[{folder}]", "val.datasets=[]",
                 "device=cuda", "train.precision=bf16", "train.batch_size=4", "data.num_workers=0",
                 "train.progress=false", "train.iterations=100000", "train.max_minutes=0.05",
                 "scheduler.type=cosine"]
    result = Trainer(load_config(SMOKE, overrides)).run()
    assert result.timed_out and 1 <= result.step < 100000
    assert (out / "smoke" / "last.safetensors").is_file()

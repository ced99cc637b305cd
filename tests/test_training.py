"""Training: the data pipeline, the loop, resume to the step, DDP, config errors, exports."""

from __future__ import annotations

import io
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import ciaosr
from ciaosr.cli.main import main
from ciaosr.data.benchmark import pil_downscale
from ciaosr.data.train_dataset import SRTrainDataset, StreamSampler, apply_flips
from ciaosr.geometry import make_coord
from ciaosr.errors import CiaosrError
from ciaosr.training import checkpointing as ck
from ciaosr.training.config import build_config, dump_config, load_config
from ciaosr.training.schedule import make_scheduler
from ciaosr.training.trainer import Trainer

from conftest import REPO, require_shared

SMOKE = REPO / "configs" / "smoke.yaml"


@pytest.fixture(scope="module")
def data_root() -> Path:
    return require_shared("datasets")


@pytest.fixture(scope="module")
def t91(data_root) -> Path:
    return data_root / "T91" / "HR"


def tiny(data_root: Path, out: Path, *extra: str) -> list[str]:
    """--set overrides for a fast run of the smoke config: no validation, tiny batches."""
    return [f"data_root={data_root}", "data.train=[T91/HR]", f"output_dir={out}", "val.datasets=[]",
            "train.batch_size=2", "data.num_queries=64", "train.log_every=1", "train.save_every=1000", "data.num_workers=0",
            "train.progress=false", *extra]


def sets(overrides: list[str]) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def weights_of(state_file: Path) -> dict:
    return ck.load_state(state_file)["model"]


def assert_same_weights(a: dict, b: dict, atol: float = 0.0) -> None:
    assert a.keys() == b.keys()
    worst = max((a[k].double() - b[k].double()).abs().max().item() for k in a)
    assert worst <= atol, f"weights differ by {worst}"


# --- data ---------------------------------------------------------------------------

def test_sample_shapes_ranges_and_determinism(t91):
    ds = SRTrainDataset([t91], seed=3, lr_patch=16, num_queries=100)
    assert len(ds) == 91 and not ds.skipped  # 64-pixel crops fit every T91 image
    s = ds[5]
    assert s["lr"].shape == (3, 16, 16) and s["lr"].dtype == torch.float32
    assert s["coord"].shape == (100, 2) and s["cell"].shape == (100, 2) and s["gt"].shape == (100, 3)
    assert 0 <= s["lr"].min() and s["lr"].max() <= 1 and 0 <= s["gt"].min() and s["gt"].max() <= 1
    # 8-bit values, as a bicubic-downscaled uint8 image would hold
    assert torch.allclose((s["lr"] * 255).round(), s["lr"] * 255, atol=1e-3)
    scale = float(s["scale"])
    assert 1 <= scale < 4
    crop = round(16 * scale)
    assert torch.allclose(s["cell"], torch.full((100, 2), 2.0 / crop))
    assert s["coord"].abs().max() < 1
    # coordinates are pixel centres of the crop, all distinct (sampled without replacement)
    pix = ((s["coord"] + 1) * crop / 2 - 0.5).round().long()
    assert len({tuple(p) for p in pix.tolist()}) == 100
    # determinism: same (seed, index) -> same sample, in another instance too
    again = SRTrainDataset([t91], seed=3, lr_patch=16, num_queries=100)[5]
    assert all(torch.equal(s[k], again[k]) for k in s)
    assert not torch.equal(ds[6]["lr"], s["lr"])
    assert not torch.equal(SRTrainDataset([t91], seed=4, lr_patch=16, num_queries=100)[5]["gt"], s["gt"])


def test_query_values_are_the_hr_pixels(tmp_path):
    # A gradient image whose pixel values encode their position: gt must match the coords.
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(80, 90, 3), dtype=np.uint8)
    folder = tmp_path / "hr"
    folder.mkdir()
    Image.fromarray(img).save(folder / "a.png")
    ds = SRTrainDataset([folder], lr_patch=8, scales=[4], num_queries=64, augment=False)
    s = ds[0]
    # find the crop offset by matching the gt values against the image
    crop = 32
    pix = ((s["coord"] + 1) * crop / 2 - 0.5).round().long()
    gt8 = (s["gt"] * 255).round().to(torch.uint8).numpy()
    hits = [(y0, x0) for y0 in range(80 - crop + 1) for x0 in range(90 - crop + 1)
            if np.array_equal(img[pix[:, 0].numpy() + y0, pix[:, 1].numpy() + x0], gt8)]
    assert len(hits) == 1
    y0, x0 = hits[0]
    expect = pil_downscale(torch.from_numpy(img[y0:y0 + crop, x0:x0 + crop]).permute(2, 0, 1), (8, 8)).float() / 255
    assert torch.equal(s["lr"], expect)


def test_target_upscale_draws_targets_from_the_enlarged_crop(tmp_path):
    """OPE-SR's official sampler (ope-sample-train-2): the targets are pixels of the
    augmented HR crop enlarged 3x by PIL's bicubic (its resize_fn), on that 3x grid; the LR
    and the other draws are those of the plain sample."""
    rng = np.random.default_rng(1)
    folder = tmp_path / "hr"
    folder.mkdir()
    Image.fromarray(rng.integers(0, 256, size=(70, 75, 3), dtype=np.uint8)).save(folder / "a.png")
    plain = SRTrainDataset([folder], lr_patch=8, scales=[4], num_queries=64)
    ope = SRTrainDataset([folder], lr_patch=8, scales=[4], num_queries=1024, target_upscale=3)
    for k in range(3):
        img, draws = ope.image_and_draws(k)
        s = ope[k]
        assert torch.equal(s["lr"], plain[k]["lr"])
        assert draws.queries.max() >= 32 * 32  # drawn over the 96 x 96 grid
        crop = img[:, draws.top:draws.top + 32, draws.left:draws.left + 32]
        crop = apply_flips((crop,), draws.flip_rows, draws.flip_cols, draws.transpose)[0]
        big = Image.fromarray(crop.permute(1, 2, 0).numpy()).resize((96, 96), Image.BICUBIC)
        big = torch.from_numpy(np.asarray(big).copy()).reshape(-1, 3)
        idx = torch.from_numpy(draws.queries)
        assert torch.equal(s["gt"], big[idx].float() / 255)
        assert torch.equal(s["coord"], make_coord((96, 96))[idx])
    with pytest.raises(CiaosrError, match="num_queries must be in 1..9216"):
        SRTrainDataset([folder], lr_patch=8, scales=[4], num_queries=9217, target_upscale=3)
    with pytest.raises(CiaosrError, match="'data.target_upscale' must be a whole number >= 1, got 0"):
        build_config({"data": {"target_upscale": 0}})
    with pytest.raises(CiaosrError, match="bicubic only"):
        build_config({"data": {"target_upscale": 3, "pipeline": "realworld"}})


def test_discrete_scales(t91):
    ds = SRTrainDataset([t91], scales=[2, 3, 4], lr_patch=16, num_queries=64)
    seen = set()
    for k in range(40):
        s = ds[k]
        sc = float(s["scale"])
        seen.add(sc)
        assert torch.allclose(s["cell"][0], torch.tensor([2 / (16 * sc)] * 2))
    assert seen == {2.0, 3.0, 4.0}
    only3 = SRTrainDataset([t91], scales=[3], lr_patch=16, num_queries=64)
    assert {float(only3[k]["scale"]) for k in range(5)} == {3.0}


def test_workers_give_the_same_batches(t91):
    ds = SRTrainDataset([t91], lr_patch=16, num_queries=32, cache=True)

    def batches(workers):
        dl = torch.utils.data.DataLoader(ds, batch_size=3, sampler=StreamSampler(7, 3, 3), num_workers=workers)
        return [b["gt"] for b in dl]

    for a, b in zip(batches(0), batches(2)):
        assert torch.equal(a, b)


def test_stream_sampler_shards_one_stream():
    single = list(StreamSampler(10, 4, 6, 0, 1))
    ranks = [list(StreamSampler(10, 4, 3, r, 2)) for r in range(2)]
    merged = [i for t in range(4) for r in range(2) for i in ranks[r][3 * t:3 * t + 3]]
    assert merged == single == list(range(10, 34))


def test_small_images_skipped_with_warning(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.new("RGB", (40, 40)).save(folder / "small.png")
    Image.new("RGB", (100, 90)).save(folder / "big.jpg")
    with pytest.warns(UserWarning, match=r"skipping 1 of 2 .*small.png"):
        ds = SRTrainDataset([folder], lr_patch=16, num_queries=64)
    assert [p.name for p in ds.files] == ["big.jpg"]
    assert ds[3]["lr"].shape == (3, 16, 16)
    with pytest.warns(UserWarning), pytest.raises(CiaosrError, match="no training image is at least"):
        SRTrainDataset([folder], lr_patch=48, num_queries=64)


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(CiaosrError, match="not found"):
        SRTrainDataset([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(CiaosrError, match="no images"):
        SRTrainDataset([tmp_path / "empty"])


# --- config -------------------------------------------------------------------------

def test_config_overrides_and_types():
    cfg = load_config(SMOKE, ["train.iterations=7", "optimizer.lr=1e-4", "data.scales=[2, 3]",
                              "model.encoder_args.num_blocks=1", "val.datasets=Set5"])
    assert cfg["train"]["iterations"] == 7
    assert cfg["optimizer"]["lr"] == pytest.approx(1e-4)  # YAML reads '1e-4' as a string
    assert cfg["data"]["scales"] == [2, 3]
    assert cfg["model"]["encoder_args"] == {"mid_channels": 16, "num_blocks": 1}  # other args kept
    assert cfg["val"]["datasets"] == ["Set5"]
    assert cfg["name"] == "smoke"
    with pytest.raises(CiaosrError, match="'train.batch_size' must be an integer"):
        build_config({"train": {"batch_size": "big"}})
    with pytest.raises(CiaosrError, match="did you mean 'optimizer.lr'"):
        build_config({"optimizer": {"lrr": 1}})
    with pytest.raises(CiaosrError, match="fp16 needs a GPU"):
        build_config({"device": "cpu", "train": {"precision": "fp16"}})
    with pytest.raises(CiaosrError, match="'train.precision' must be one of auto, fp32, bf16, fp16, got 'none'"):
        build_config({"train": {"precision": "none"}})  # 'none' is train.amp's old name only


@pytest.mark.parametrize("amp, precision", [("none", "fp32"), ("bf16", "bf16"), ("fp16", "fp16")])
def test_old_amp_key_is_read_as_precision(amp, precision):
    """Configs and training states written with ``train.amp`` still build, as train.precision."""
    cfg = build_config({"train": {"amp": amp, "batch_size": 3}})
    assert cfg["train"]["precision"] == precision and "amp" not in cfg["train"]
    assert cfg["train"]["batch_size"] == 3  # the rest of the section kept
    cfg = build_config({}, [f"train.amp={amp}"])
    assert cfg["train"]["precision"] == precision and "amp" not in cfg["train"]
    assert "amp" not in yaml.safe_load(dump_config(cfg))["train"]  # (the word is in other keys: degrade_per_sample)


def test_old_amp_key_errors():
    with pytest.raises(CiaosrError, match="fp16 needs a GPU"):
        build_config({"device": "cpu", "train": {"amp": "fp16"}})
    with pytest.raises(CiaosrError, match="'train.precision' must be one of auto, fp32, bf16, fp16, got 'fp8'"):
        build_config({"train": {"amp": "fp8"}})
    with pytest.raises(CiaosrError, match=r"^x.yaml: give train.precision only \(train.amp is its old name\)$"):
        build_config({"train": {"amp": "none", "precision": "bf16"}}, source="x.yaml")


def test_resume_a_state_written_with_train_amp(data_root, tmp_path, capsys):
    """``--resume STATE`` without --config rebuilds the state's own config: one saved as
    ``train.amp: none`` resumes as fp32, with no warning that the config changed."""
    out = tmp_path / "runs"
    Trainer(load_config(SMOKE, tiny(data_root, out, "train.iterations=1"))).run()
    path = ck.latest_state(out / "smoke")
    state = ck.load_state(path)
    old = yaml.safe_load(state["config"])
    assert old["train"].pop("precision") == "fp32"
    old["train"]["amp"] = "none"  # as older versions wrote it
    state["config"] = yaml.safe_dump(old, sort_keys=False, default_flow_style=None)
    ck.save_state(state, path)
    capsys.readouterr()
    assert main(["train", "--resume", str(path), "--set", "train.iterations=2"]) == 0
    err = capsys.readouterr().err
    assert "at step 1" in err and "differs" not in err, err
    assert ck.list_states(out / "smoke")[-1][0] == 2
    assert "precision: fp32" in (out / "smoke" / "config.yaml").read_text()


#: (lr, batch, schedule, milestones, iterations) of the configs that follow their family's
#: official training script rather than the LIIF / CiaoSR papers' recipe.
OFFICIAL_RECIPES = {
    "edsr-baseline-itsrn": (2e-4, 16, "multistep", [100_000, 200_000, 400_000, 600_000, 800_000], 1_000_000),
    "edsr-baseline-lmliif": (1e-4, 16, "multistep", [200_000, 400_000, 600_000, 800_000, 1_000_000], 1_200_000),
    "edsr-baseline-lmlte": (1e-4, 16, "multistep", [200_000, 400_000, 600_000, 800_000, 1_000_000], 1_200_000),
    "edsr-baseline-lmciaosr": (1e-4, 16, "multistep", [200_000, 400_000, 600_000, 800_000, 1_000_000], 1_200_000),
    "swinir-lmliif": (2e-4, 32, "multistep", [250_000, 400_000, 450_000, 475_000], 500_000),
    "edsr-baseline-srno": (4e-4, 64, "cosine", [], 262_500),
    "edsr-baseline-ope": (1e-4, 16, "multistep", [200_000, 400_000, 600_000, 800_000], 1_000_000),
    "edsr-baseline-clit": (1e-4, 32, "multistep", [200_000, 400_000, 600_000, 800_000], 1_000_000),
}


def test_every_shipped_config_prepares(data_root, tmp_path):
    # (the real-world configs: tests/test_realworld_training.py)
    configs = sorted(p for p in (REPO / "configs").glob("*.yaml") if not p.name.startswith("realworld-"))
    names = {p.stem for p in configs}
    assert {"smoke", "edsr-baseline-ciaosr", "rdn-ciaosr", "swinir-ciaosr", "edsr-baseline-liif",
            "edsr-baseline-lte", "edsr-baseline-metasr", "edsr-baseline-itsrn"} <= names
    weights = require_shared("weights/liif-edsr-baseline/edsr-baseline-liif.pth")
    for path in configs:
        # the configs read the fetched layout (DIV2K-train/HR, ...); here the shared sample stands in,
        # and the smoke config reads the repository's own sample image
        data = ([f"data_root={REPO}"] if path.stem == "smoke"
                else [f"data_root={data_root}", "data.train=[DIV2K-mini/HR]"])
        cfg = load_config(path, [*data, f"output_dir={tmp_path}", "data.cache=false"])
        if cfg["init"]["checkpoint"]:
            cfg["init"]["checkpoint"] = str(weights)
        trainer = Trainer(cfg)  # every check passes; nothing is written
        assert trainer.model.spec["name"] == cfg["model"]["name"]
        recipe = (cfg["optimizer"]["lr"], cfg["train"]["batch_size"], cfg["scheduler"]["type"],
                  cfg["scheduler"]["milestones"], cfg["train"]["iterations"])
        if path.stem in OFFICIAL_RECIPES:  # the families' own official recipes
            assert recipe == OFFICIAL_RECIPES[path.stem], path.stem
            warmup = (12_500, 0.1) if path.stem == "edsr-baseline-srno" else (0, 0.1)  # SRNO's 50 epochs
            assert (cfg["scheduler"]["warmup_iterations"], cfg["scheduler"]["warmup_factor"]) == warmup, path.stem
        elif path.stem != "smoke":
            assert (cfg["optimizer"]["lr"], cfg["train"]["batch_size"], cfg["scheduler"]["step_size"],
                    cfg["train"]["iterations"]) == (1e-4, 16, 200_000, 1_000_000)
    assert not any(tmp_path.iterdir())


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_errors_come_before_any_work(data_root, tmp_path, capsys):
    out = tmp_path / "runs"
    base = ["train", "--config", str(SMOKE), *sets(tiny(data_root, out))]
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("model:\n  name: edsr-baseline-liif\ntrain:\n  iterashuns: 5\n")
    assert "unknown config key 'train.iterashuns'" in _one_line_error(capsys, ["train", "--config", str(bad_yaml)])
    assert "unknown config key 'data.folders'" in _one_line_error(capsys, [*base, "--set", "data.folders=[x]"])
    assert "training folder not found" in _one_line_error(capsys, [*base, "--set", "data.train=[NoSuchSet/HR]"])
    (tmp_path / "empty").mkdir()
    assert "no images" in _one_line_error(capsys, [*base, "--set", f"data.train=[{tmp_path / 'empty'}]"])
    assert "validation folder not found" in _one_line_error(capsys, [*base, "--set", "val.datasets=[Set0]"])
    assert "nothing to resume" in _one_line_error(capsys, [*base, "--resume"])
    liif = require_shared("weights/liif-edsr-baseline/edsr-baseline-liif.pth")
    assert "does not fit the encoder" in _one_line_error(
        capsys, [*base, "--set", f"init.checkpoint={liif}", "--set", "init.parts=[encoder]"])
    assert not out.exists()  # nothing was created by any of these

    # A real state, then resuming it with a config of another model.
    assert main([*base, "--set", "train.iterations=1"]) == 0
    run = out / "smoke"
    lines = len(read_jsonl(run / "metrics.jsonl"))
    capsys.readouterr()
    err = _one_line_error(capsys, [*base, "--set", "model.name=edsr-baseline-liif", "--resume"])
    assert "cannot resume" in err and "edsr-baseline-ciaosr" in err and "edsr-baseline-liif" in err
    err = _one_line_error(capsys, [*base, "--set", "model.encoder_args.num_blocks=3", "--resume"])
    assert "cannot resume" in err and "encoder_args" in err
    assert "already holds training states" in _one_line_error(capsys, base)
    assert len(read_jsonl(run / "metrics.jsonl")) == lines
    assert [p.name for p in (run / "states").iterdir()] == ["state_000000001.pt"]


# --- training ------------------------------------------------------------------------

def test_smoke_training_loss_falls_and_exports_load(data_root, tmp_path):
    # A small validation folder of plain HR images (a corner of one Set5 image).
    val = tmp_path / "val"
    val.mkdir()
    Image.open(data_root / "Set5" / "HR" / "bird.png").convert("RGB").crop((0, 0, 96, 96)).save(val / "bird.png")
    out = tmp_path / "runs"
    # the smoke config as shipped (40 iterations, lr halved after 30), validating on that folder
    rc = main(["train", "--config", str(SMOKE), "--set", f"data_root={data_root}", "--set", "data.train=[T91/HR]",
               "--set", f"output_dir={out}",
               "--set", f"val.datasets=[{val}]", "--set", "val.every=20", "--set", "train.progress=false"])
    assert rc == 0
    run = out / "smoke"
    rows = read_jsonl(run / "metrics.jsonl")
    losses = [r["loss"] for r in rows if "loss" in r]
    assert len(losses) == 8 and all(np.isfinite(losses))
    assert np.mean(losses[-2:]) < 0.5 * losses[0], losses
    vals = [r for r in rows if "val" in r]
    assert [r["step"] for r in vals] == [20, 40] and all(20 < r["val_mean"] < 60 for r in vals)
    assert [r["lr"] for r in rows if "lr" in r] == [1e-3] * 5 + [5e-4] * 3  # halved after step 30
    assert (run / "config.yaml").is_file() and (run / "train.log").is_file()
    assert sorted(p.name for p in (run / "states").iterdir()) == ["state_000000020.pt", "state_000000040.pt"]
    for name in ("last", "best"):
        model = ciaosr.load_model(run / f"{name}.safetensors")
        assert model.spec["name"] == "edsr-baseline-ciaosr" and model.spec["encoder_args"]["num_blocks"] == 2
        sr = model.upsample(torch.rand(1, 3, 12, 12), (30, 30))
        assert sr.shape == (1, 3, 30, 30) and torch.isfinite(sr).all()
    last = ciaosr.load_model(run / "last.safetensors")
    state = ck.load_state(run / "states" / "state_000000040.pt")
    assert_same_weights(last.state_dict(), state["model"])
    assert json.loads(last.metadata["step"]) == 40
    best = ciaosr.load_model(run / "best.safetensors")
    assert json.loads(best.metadata["val_psnr_mean"]) == max(r["val_mean"] for r in vals)


@pytest.mark.parametrize("schedule", ["scheduler.step_size=4", "scheduler.type=cosine"])
def test_resume_repeats_the_uninterrupted_run(data_root, tmp_path, schedule):
    out = tmp_path / "runs"
    common = tiny(data_root, out, "train.iterations=6", "train.ema_decay=0.9", schedule)
    straight = Trainer(load_config(SMOKE, common + ["name=straight"])).run()
    assert straight.step == 6 and straight.interrupted is None

    def interrupt(trainer, step):
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C would: finish the step, save, stop

    # with DataLoader workers this time: the data stream must not depend on them
    cut = common + ["name=cut", "data.num_workers=2"]
    first = Trainer(load_config(SMOKE, cut), step_callback=interrupt).run()
    assert (first.step, first.interrupted) == (3, signal.SIGINT)
    assert [s for s, _ in ck.list_states(out / "cut")] == [3]
    second = Trainer(load_config(SMOKE, cut), resume=True).run()
    assert second.step == 6 and second.interrupted is None

    a = ck.load_state(ck.latest_state(out / "straight"))
    b = ck.load_state(ck.latest_state(out / "cut"))
    assert_same_weights(a["model"], b["model"])  # bit-exact on CPU
    assert_same_weights(a["ema"]["weights"], b["ema"]["weights"])
    assert a["samples_seen"] == b["samples_seen"] == 12
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 6
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])
    la = [r["loss"] for r in read_jsonl(out / "straight" / "metrics.jsonl")]
    lb = [r["loss"] for r in read_jsonl(out / "cut" / "metrics.jsonl")]
    assert la == lb


@pytest.mark.parametrize("how", ["sigterm", "ctrl-c"])
def test_signal_saves_state_and_cli_resumes(data_root, tmp_path, how):
    out = tmp_path / "runs"
    workers = "0" if how == "sigterm" else "2"  # Ctrl-C reaches the DataLoader workers too
    argv = [sys.executable, "-m", "ciaosr", "train", "--config", str(SMOKE),
            *sets(tiny(data_root, out, "train.iterations=100000", f"data.num_workers={workers}"))]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    metrics = out / "smoke" / "metrics.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and read_jsonl(metrics):
            break
        time.sleep(0.2)
    if how == "sigterm":
        proc.send_signal(signal.SIGTERM)
        expected = 128 + signal.SIGTERM
    else:
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal does on Ctrl-C: the whole process group
        expected = 128 + signal.SIGINT
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == expected, err
    states = ck.list_states(out / "smoke")
    assert len(states) == 1 and "saved training state" in err and "Traceback" not in err
    step = states[0][0]
    assert step >= 1
    # the last line is the exact command that resumes: this Python, -m ciaosr, the state
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"stopped at step {step}; continue with: "), last
    command = shlex.split(last.split("continue with: ", 1)[1])
    assert command == [sys.executable, "-m", "ciaosr", "train", "--resume", str(states[0][1])]
    rc = subprocess.run([*command, "--set", f"train.iterations={step + 2}"], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=60)
    assert rc.returncode == 0, rc.stderr
    assert f"at step {step}" in rc.stderr
    assert ck.list_states(out / "smoke")[-1][0] == step + 2


def test_init_encoder_from_official_liif_and_freeze(data_root, tmp_path):
    liif = require_shared("weights/liif-edsr-baseline/edsr-baseline-liif.pth")
    cfg = load_config(SMOKE, tiny(data_root, tmp_path, "train.iterations=2", "train.batch_size=1",
                                  f"init.checkpoint={liif}", "init.parts=[encoder]", "freeze_encoder=true",
                                  "train.precision=bf16", "train.grad_clip=0.5", "train.ema_decay=0.5"))
    cfg["model"]["encoder_args"] = {}  # the full EDSR-baseline encoder
    trainer = Trainer(cfg)
    decoder_before = {k: v.clone() for k, v in trainer.model.decoder.state_dict().items()}
    result = trainer.run()
    assert result.step == 2 and np.isfinite(result.last_loss)
    official = ciaosr.load_model(liif).encoder.state_dict()
    assert_same_weights(trainer.model.encoder.state_dict(), official)  # loaded, then frozen
    assert any(not torch.equal(decoder_before[k], v) for k, v in trainer.model.decoder.state_dict().items())
    exported = ciaosr.load_model(tmp_path / "smoke" / "last.safetensors")  # the EMA weights
    assert_same_weights(exported.encoder.state_dict(), official)


def test_torchrun_two_processes_match_one(data_root, tmp_path):
    """2 gloo processes x batch 2 == 1 process x batch 4: same samples, averaged gradients."""
    ddp_out, single_out = tmp_path / "ddp", tmp_path / "single"
    overrides = tiny(data_root, ddp_out, "train.iterations=3")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "ciaosr", "train", "--config", str(SMOKE), *sets(overrides)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "x 2 processes, batch 2 per process = 4" in proc.stderr
    run = ddp_out / "smoke"
    assert len(read_jsonl(run / "metrics.jsonl")) == 3  # rank 0 alone writes
    state = ck.load_state(ck.latest_state(run))
    assert (state["world_size"], state["samples_seen"]) == (2, 12)

    single = Trainer(load_config(SMOKE, tiny(data_root, single_out, "train.iterations=3", "train.batch_size=4"))).run()
    assert single.step == 3
    assert_same_weights(state["model"], weights_of(ck.latest_state(single_out / "smoke")), atol=1e-6)


def test_resume_from_a_state_alone_warns_about_changed_keys(data_root, tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["train", "--config", str(SMOKE), *sets(tiny(data_root, out, "train.iterations=1"))]) == 0
    run = out / "smoke"
    capsys.readouterr()
    # no --config: the state's own config; a changed learning rate is allowed but named
    assert main(["train", "--resume", str(run), "--set", "train.iterations=2", "--set", "optimizer.lr=5e-4"]) == 0
    err = capsys.readouterr().err
    assert "resuming" in err and "differs from the saved one in: optimizer.lr" in err
    assert [s for s, _ in ck.list_states(run)] == [1, 2]
    assert "resume checkpoint not found" in _one_line_error(capsys, ["train", "--resume", str(tmp_path / "nowhere")])


def test_tensorboard_gets_scalars_and_images_when_installed(tmp_path, monkeypatch):
    from ciaosr.training import logging as train_logging

    calls = []

    class FakeWriter:
        def add_scalar(self, tag, value, step):
            calls.append(("scalar", tag, step))

        def add_image(self, tag, img, step):
            calls.append(("image", tag, tuple(img.shape)))

        def close(self):
            calls.append(("close",))

    monkeypatch.setattr(train_logging, "_tensorboard_writer", lambda log_dir: FakeWriter())
    log = train_logging.RunLogger(tmp_path, total_steps=10, start_step=0, progress=False)
    log.scalars(5, 0.1, 1e-4, 2.0)
    log.validation(5, {"Set5 x4": 30.0}, 30.0, torch.rand(3, 8, 8))
    log.close()
    assert ("scalar", "train/loss", 5) in calls and ("scalar", "val/psnr/Set5 x4", 5) in calls
    assert ("image", "val/sample", (3, 8, 8)) in calls and calls[-1] == ("close",)
    rows = read_jsonl(tmp_path / "metrics.jsonl")
    assert rows[0]["loss"] == 0.1 and rows[1]["val_mean"] == 30.0
    # without tensorboard installed (as here) the JSONL log alone is written
    monkeypatch.undo()
    plain = train_logging.RunLogger(tmp_path / "b", total_steps=1, start_step=0, progress=False)
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        assert plain.tb is None
    plain.close()


# --- time budget (train.max_minutes) and the cosine schedule -----------------------------

def small_val_folder(data_root: Path, folder: Path) -> Path:
    """A validation folder of one plain HR image: a corner of a Set5 image."""
    folder.mkdir()
    Image.open(data_root / "Set5" / "HR" / "bird.png").convert("RGB").crop((0, 0, 96, 96)).save(folder / "bird.png")
    return folder


def test_time_budget_stops_validates_and_exports(data_root, tmp_path, capsys):
    out = tmp_path / "runs"
    val = small_val_folder(data_root, tmp_path / "val")
    cfg = load_config(SMOKE, tiny(data_root, out, "train.iterations=50", "train.max_minutes=2", "train.log_every=4",
                                  f"val.datasets=[{val}]", "scheduler.type=cosine", "optimizer.lr=1e-3"))
    now = [0.0]

    def spend_time(trainer, step):  # the budget's clock: a quarter of the budget per step, all of it at step 3
        now[0] = 30.0 * step if step < 3 else 120.0

    trainer = Trainer(cfg, step_callback=spend_time)
    trainer.clock = lambda: now[0]
    result = trainer.run()
    assert (result.step, result.timed_out, result.interrupted) == (3, True, None)
    run = out / "smoke"
    assert [s for s, _ in ck.list_states(run)] == [3]
    rows = read_jsonl(run / "metrics.jsonl")
    # the loss since the last line is logged at the stop (log_every 4 alone would log none)
    assert [r["step"] for r in rows if "loss" in r] == [3]
    assert [r["step"] for r in rows if "val" in r] == [3]  # validated at the stop
    last, best = (ciaosr.load_model(run / f"{n}.safetensors") for n in ("last", "best"))
    assert json.loads(last.metadata["step"]) == json.loads(best.metadata["step"]) == 3
    assert_same_weights(last.state_dict(), ck.load_state(ck.latest_state(run))["model"])
    # cosine over the time budget (it runs out long before 50 iterations): the rate after
    # step 3 was set when half the budget was spent -> half the rate
    assert [r["lr"] for r in rows if "loss" in r] == [pytest.approx(5e-4)]
    err = capsys.readouterr().err
    assert "the time budget (train.max_minutes = 2) is spent" in err and "Traceback" not in err


def test_time_budget_from_the_cli_and_the_printed_resume_command(data_root, tmp_path, capsys):
    out = tmp_path / "runs"
    argv = ["train", "--config", str(SMOKE),
            *sets(tiny(data_root, out, "train.iterations=4", "train.max_minutes=1e-6"))]
    assert main(argv) == 0  # a time stop is a normal end
    err = capsys.readouterr().err
    states = ck.list_states(out / "smoke")
    assert [s for s, _ in states] == [1]  # the budget is checked after each step: at least one
    assert (out / "smoke" / "last.safetensors").is_file()
    hint = [line for line in err.splitlines() if "continue with: " in line]
    assert len(hint) == 1 and "stopped at step 1 of 4" in hint[0]
    command = shlex.split(hint[0].split("continue with: ", 1)[1])
    assert command[:3] == ["ciaosr", "train", "--resume"] and Path(command[3]) == states[0][1]
    # the printed command, as it is (its state holds the config), with a budget large enough this time
    assert main([*command[1:], "--set", "train.max_minutes=null"]) == 0
    err = capsys.readouterr().err
    assert "at step 1" in err and "finished 4 iterations" in err
    assert [s for s, _ in ck.list_states(out / "smoke")] == [1, 4]


def test_cosine_schedule_over_iterations_and_time():
    def rates(time_fraction=None, steps=4):
        opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
        sched = make_scheduler(opt, {"type": "cosine", "min_lr": 1e-4}, iterations=4, time_fraction=time_fraction)
        out = [opt.param_groups[0]["lr"]]
        for _ in range(steps):
            opt.step()
            sched.step()
            out.append(opt.param_groups[0]["lr"])
        return out, sched

    lrs, sched = rates()
    expect = [1e-4 + 9e-4 * 0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(5)]
    assert lrs == pytest.approx(expect) and lrs[-1] == pytest.approx(1e-4)
    # the time budget, when it runs out first, sets the progress
    lrs, _ = rates(time_fraction=lambda: 0.5, steps=1)
    assert lrs[1] == pytest.approx(1e-4 + 9e-4 * 0.5)
    # its state stays plain data (training states are read with weights_only=True)
    buf = io.BytesIO()
    torch.save(sched.state_dict(), buf)
    buf.seek(0)
    assert torch.load(buf, weights_only=True)["last_epoch"] == 4


def test_cosine_warmup_is_srno_official_schedule_per_iteration():
    """SRNO's official GradualWarmupScheduler (multiplier 10 over 50 epochs, then a cosine
    over the other 1000, stepped per epoch), here per iteration: each epoch of 250
    iterations starts at the official epoch's rate, 4e-5 * (1 + 9 (e - 1) / 50) during the
    warm-up, then 4e-4 * (1 + cos(pi (e - 51) / 1000)) / 2, falling to 0 at the end."""
    cfg = build_config({"train": {"iterations": 262_500}, "optimizer": {"lr": 4e-4},
                        "scheduler": {"type": "cosine", "min_lr": 0.0, "warmup_iterations": 12_500,
                                      "warmup_factor": 0.1}})
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=4e-4)
    sched = make_scheduler(opt, cfg["scheduler"], iterations=262_500)
    rate = sched.lr_lambdas[0]
    for epoch in (1, 2, 26, 50, 51):
        assert 4e-4 * rate((epoch - 1) * 250) == pytest.approx(4e-5 * (1 + 9 * (epoch - 1) / 50)), epoch
    for epoch in (53, 300, 1050):
        expect = 4e-4 * (1 + math.cos(math.pi * (epoch - 51) / 1000)) / 2
        assert 4e-4 * rate((epoch - 1) * 250) == pytest.approx(expect, rel=1e-9, abs=1e-12), epoch
    assert rate(262_500) == pytest.approx(0.0, abs=1e-12)
    assert opt.param_groups[0]["lr"] == pytest.approx(4e-5)  # the first step's rate
    # without a warm-up the cosine is unchanged
    plain = make_scheduler(opt, {"type": "cosine", "min_lr": 0.0}, iterations=100).lr_lambdas[0]
    assert plain(0) == 1.0 and plain(50) == pytest.approx(0.5)


def test_warmup_keys_are_checked():
    for bad, needle in (({"warmup_iterations": 5, "type": "step"}, "cosine schedule only, not step"),
                        ({"warmup_iterations": -1, "type": "cosine"}, "whole number"),
                        ({"warmup_iterations": 2_000_000, "type": "cosine"}, "below train.iterations"),
                        ({"warmup_factor": 2, "type": "cosine"}, r"warmup_factor' must be in \[0, 1\]")):
        with pytest.raises(CiaosrError, match=needle):
            build_config({"scheduler": bad})


def test_budget_and_schedule_keys_are_checked(capsys):
    with pytest.raises(CiaosrError, match="'train.max_minutes' must be a positive number, got 0"):
        build_config({"train": {"max_minutes": 0}})
    with pytest.raises(CiaosrError, match="'scheduler.min_lr' must be a number >= 0"):
        build_config({"scheduler": {"min_lr": -1}})
    assert build_config({}, ["train.max_minutes=7.5"])["train"]["max_minutes"] == 7.5
    assert "max_minutes" in _one_line_error(capsys, ["train", "--config", str(SMOKE), "--set",
                                                      "train.max_minutes=soon"])


# --- where the data is, --set values, --threads --------------------------------------

def test_data_root_follows_ciaosr_data_root(monkeypatch, tmp_path, capsys):
    """The configs' default data root is where `ciaosr data fetch` puts the sets."""
    monkeypatch.setenv("CIAOSR_DATA_ROOT", str(tmp_path / "elsewhere" / "datasets"))
    unset = ["data_root=null", "data.train=[T91/HR]"]  # the smoke config names its own root: take it out
    assert load_config(SMOKE)["data_root"] == "."
    assert load_config(SMOKE, unset)["data_root"] == str(tmp_path / "elsewhere" / "datasets")
    assert load_config(SMOKE, ["data_root=/data"])["data_root"] == "/data"  # a config or --set value wins
    # a missing training folder names the settings that fix it, before anything is written
    out = tmp_path / "runs"
    err = _one_line_error(capsys, ["train", "--config", str(SMOKE), *sets(unset), "--set", f"output_dir={out}"])
    missing = tmp_path / "elsewhere" / "datasets" / "T91" / "HR"
    assert err == (f"error: training folder not found: {missing} "
                   f"(set data_root in the config, --set data_root=DIR, or CIAOSR_DATA_ROOT; "
                   f"'ciaosr data fetch NAME' puts the paper's sets in ./datasets)\n")
    assert not out.exists()
    monkeypatch.delenv("CIAOSR_DATA_ROOT")
    assert load_config(SMOKE, unset)["data_root"] == "datasets"
    from ciaosr.cli.main import build_parser
    assert build_parser().parse_args(["data", "list"]).root == "datasets"  # the same root as `ciaosr data`


def test_a_set_value_that_is_not_yaml_is_an_error(capsys):
    err = _one_line_error(capsys, ["train", "--config", str(SMOKE), "--set", "data.train=[unclosed"])
    assert err.startswith("error: --set data.train: the value '[unclosed' is not valid YAML (")
    assert """--set 'data.train="[unclosed"'""" in err  # how to give it as a string
    assert load_config(SMOKE, ['name="a[b"'])["name"] == "a[b"  # which works


def test_threads_flag(tmp_path, capsys):
    assert main(["train", "--config", str(SMOKE), "--threads", "3", "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["threads"] == 3  # over the config's 1
    err = _one_line_error(capsys, ["train", "--config", str(SMOKE), "--threads", "0"])
    assert "config key 'threads' must be a positive integer or null, got 0" in err

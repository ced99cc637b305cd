"""Precision and stopping on CPUs: bf16 asked for on a CPU without native bf16 warns
once; ``train.precision: auto`` is resolved once and kept by a resume; a stop signal
saves the last finished step's state without waiting for the step in progress, and
``--resume`` does the validation and export the stop left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import ciaosr
from ciaosr import runtime
from ciaosr.cli.main import main
from ciaosr.runtime import SLOW_BF16_WARNING, Precision
from ciaosr.training import checkpointing as ck
from ciaosr.training.config import load_config
from ciaosr.training.stopping import StopSignals, Stopped
from ciaosr.training.trainer import Trainer

from conftest import REPO, require_shared

SMOKE = REPO / "configs" / "smoke.yaml"
CPU = torch.device("cpu")


def sets(overrides: list[str]) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def native_bf16(monkeypatch):
    """``native_bf16(flag)``: pretend this CPU does (not) compute bf16 natively, and that
    no warning has been printed yet in this process."""
    def pretend(flag: bool) -> None:
        monkeypatch.setattr(runtime, "_cpu_has_native_bf16", lambda: flag)
        monkeypatch.setattr(runtime, "_slow_bf16_warned", False)
    return pretend


# --- the bf16 warning --------------------------------------------------------------------

def test_bf16_on_a_cpu_without_it_warns_once(native_bf16, capsys):
    native_bf16(False)
    assert Precision.for_device("bf16", CPU) is Precision.BF16  # allowed: it runs, slowly
    assert Precision.BF16.check(CPU) is Precision.BF16
    assert Precision.for_device("auto", CPU) is Precision.FP32
    assert capsys.readouterr().err == SLOW_BF16_WARNING + "\n"  # once, one line
    assert "57x" in SLOW_BF16_WARNING and "Zen 3" in SLOW_BF16_WARNING and "\n" not in SLOW_BF16_WARNING


def test_no_warning_where_bf16_is_native_or_not_asked_for(native_bf16, capsys):
    native_bf16(True)
    assert Precision.for_device("bf16", CPU) is Precision.BF16
    assert Precision.for_device("auto", CPU) is Precision.BF16
    native_bf16(False)
    assert Precision.for_device("fp32", CPU) is Precision.FP32
    assert Precision.for_device("auto", CPU) is Precision.FP32
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("command", ["upscale", "eval", "train"])
def test_each_command_warns_in_one_line(native_bf16, command, tiny_model_file, tmp_path, capsys):
    native_bf16(False)
    img = tmp_path / "Syn" / "HR" / "a.png"
    img.parent.mkdir(parents=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(img)
    argv = {
        "upscale": ["upscale", str(img), "--scale", "2", "--model", tiny_model_file, "-o", str(tmp_path / "b.png")],
        "eval": ["eval", "--model", tiny_model_file, "--data-root", str(tmp_path), "--datasets", "Syn",
                 "--scales", "2", "--metrics", "psnr", "--device", "cpu"],
        "train": ["train", "--config", str(SMOKE), "--set", "device=cpu", "--print-config"],
    }[command]
    option = ["--set", "train.precision=bf16"] if command == "train" else ["--precision", "bf16"]
    assert main([*argv, *option]) == 0
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if "bf16" in line] == [SLOW_BF16_WARNING]
    assert "Traceback" not in err


# --- train.precision: auto ---------------------------------------------------------------

@pytest.fixture(scope="module")
def data_root() -> Path:
    return require_shared("datasets")


def quick(data_root: Path, out: Path, *extra: str) -> list[str]:
    """Overrides for a fast CPU run of the smoke config, without validation."""
    return [f"data_root={data_root}", "data.train=[T91/HR]", f"output_dir={out}", "device=cpu", "val.datasets=[]",
            "train.batch_size=2", "data.num_queries=64", "train.log_every=1", "data.num_workers=0",
            "train.progress=false", *extra]


def saved_precision(state_file: Path) -> str:
    return yaml.safe_load(ck.load_state(state_file)["config"])["train"]["precision"]


def test_auto_precision_is_resolved_once_and_kept_by_a_resume(data_root, tmp_path, native_bf16, capsys):
    out = tmp_path / "runs"
    native_bf16(True)
    first = Trainer(load_config(SMOKE, quick(data_root, out, "train.iterations=1", "train.precision=auto")))
    assert first.precision is Precision.BF16
    first.run()
    err = capsys.readouterr().err
    assert "train.precision auto: bf16 (native bf16 on this CPU)" in err
    assert yaml.safe_load((out / "smoke" / "config.yaml").read_text())["train"]["precision"] == "bf16"
    assert saved_precision(ck.latest_state(out / "smoke")) == "bf16"

    # resumed where the CPU has no native bf16: auto keeps the run's bf16, and says so
    native_bf16(False)
    second = Trainer(load_config(SMOKE, quick(data_root, out, "train.iterations=2", "train.precision=auto")),
                     resume=True)
    assert second.precision is Precision.BF16
    second.run()
    err = capsys.readouterr().err
    assert "train.precision auto: bf16 (the resumed state's precision)" in err
    assert "differs" not in err and err.count(SLOW_BF16_WARNING) == 1
    assert saved_precision(ck.latest_state(out / "smoke")) == "bf16"

    # another precision named on a resume is used, but not silently
    third = Trainer(load_config(SMOKE, quick(data_root, out, "train.iterations=3", "train.precision=fp32")),
                    resume=True)
    assert third.precision is Precision.FP32
    third.run()
    assert "differs from the saved one in: train.precision" in capsys.readouterr().err

    # a new run on this CPU: fp32
    fresh = Trainer(load_config(SMOKE, quick(data_root, out, "name=other", "train.precision=auto")))
    assert fresh.precision is Precision.FP32 and fresh.cfg["train"]["precision"] == "fp32"


# --- StopSignals -------------------------------------------------------------------------

def test_a_signal_saves_while_the_main_thread_is_in_a_long_cpp_call():
    """A backward pass is one C++ call: Python's own handler would wait for its end."""
    saved = []
    x = torch.randn(800, 800, requires_grad=True)
    y = x
    for _ in range(40):
        y = torch.tanh(y @ x) * 0.1
    previous = signal.getsignal(signal.SIGTERM)
    with StopSignals(lambda sig: saved.append((sig, time.monotonic()))) as stops:
        threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGTERM)).start()
        y.sum().backward()
        back = time.monotonic()
        assert len(saved) == 1 and saved[0][0] == signal.SIGTERM
        assert saved[0][1] < back  # saved while the main thread was still in backward()
        assert stops.signal == signal.SIGTERM
        with pytest.raises(Stopped):  # the training thread stops at its next commit
            stops.hold()
        with pytest.raises(Stopped):
            with stops.commit():
                pass
        stops.finish()
    assert len(saved) == 1
    assert signal.getsignal(signal.SIGTERM) is previous


def test_a_stop_waits_for_a_commit_in_progress():
    saved = threading.Event()
    with StopSignals(lambda sig: saved.set()) as stops:
        stops.hold()  # the optimiser step and its bookkeeping
        os.kill(os.getpid(), signal.SIGINT)
        assert not saved.wait(0.5)
        stops.release()
        assert saved.wait(10)
        assert stops.signal == signal.SIGINT


def test_a_second_signal_stops_at_once():
    with StopSignals(lambda sig: None):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)


def test_a_failed_save_is_raised_by_finish():
    def save(sig):
        raise OSError("disk full")

    with StopSignals(save) as stops:
        os.kill(os.getpid(), signal.SIGTERM)
        with pytest.raises(OSError, match="disk full"):
            stops.finish()


# --- ciaosr train and SIGTERM ------------------------------------------------------------

def heavy(data_root: Path, out: Path, *extra: str) -> list[str]:
    """Overrides for steps of ~3 s on one thread: a batch of 24 crops of 48 x 48, 2304
    queries each."""
    return [f"data_root={data_root}", "data.train=[T91/HR]", "val.datasets=[Set5]", f"output_dir={out}",
            "train.batch_size=24", "data.lr_patch=48", "data.num_queries=2304", "data.scale_max=2",
            "train.log_every=1", "data.num_workers=0", "train.progress=false", *extra]


def test_a_stop_before_the_first_step_finished_saves_nothing(data_root, tmp_path, monkeypatch, capsys):
    from ciaosr.training import trainer as trainer_module

    step = trainer_module.optimisation_step
    timers = []

    def signalled_step(*args, **kwargs):  # SIGTERM 0.2 s into step 1
        timers.append(threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)))
        timers[-1].start()
        return step(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "optimisation_step", signalled_step)
    overrides = heavy(data_root, tmp_path, "train.iterations=2", "val.datasets=[]", "data.cache=false",
                      "train.batch_size=8")
    cfg = load_config(SMOKE, overrides)
    result = Trainer(cfg).run()  # from Python: returns once the main thread is back from step 1
    timers[0].join()
    assert len(timers) == 1  # step 2 never began
    assert (result.step, result.interrupted) == (0, signal.SIGTERM)
    assert ck.list_states(tmp_path / "smoke") == []
    assert "stopped by signal 15 before the first step finished: nothing to save" in capsys.readouterr().err

def test_sigterm_mid_step_exits_at_once_and_resume_does_what_it_left(data_root, tmp_path):
    """Steps of ~3 s on one thread; SIGTERM one second into step 2: the process ends within seconds with step 1's state
    (step 2 abandoned), its validation and export left for --resume, which does them
    before step 2."""
    out = tmp_path / "runs"
    run = out / "smoke"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "ciaosr", "train", "--config", str(SMOKE),
                             *sets(heavy(data_root, out, "train.iterations=2"))],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    metrics = run / "metrics.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and not (metrics.exists() and read_jsonl(metrics)):
        time.sleep(0.05)
    time.sleep(1.0)  # step 2 under way
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    latency = time.monotonic() - t0
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert latency < 10, latency
    assert "Traceback" not in err
    states = ck.list_states(run)
    assert [s for s, _ in states] == [1], err  # step 2 was abandoned, not finished
    assert ck.load_state(states[0][1])["pending"] == ["validation", "export"]
    assert "(stopped by signal 15; the validation and export left for --resume)" in err
    assert not (run / "last.safetensors").exists()
    assert not [r for r in read_jsonl(metrics) if "val" in r]
    last = err.strip().splitlines()[-1]
    assert last == f"stopped at step 1; continue with: {sys.executable} -m ciaosr train --resume {states[0][1]}"

    done = subprocess.run([sys.executable, "-m", "ciaosr", "train", "--resume", str(states[0][1])], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "step 1: the validation and export left pending by the stop" in done.stderr
    assert [r["step"] for r in read_jsonl(metrics) if "val" in r] == [1, 2]  # step 1's, before step 2
    assert [s for s, _ in ck.list_states(run)] == [1, 2]
    assert ck.load_state(ck.state_path(run, 1))["pending"] == []
    assert json.loads(ciaosr.load_model(run / "last.safetensors").metadata["step"]) == 2

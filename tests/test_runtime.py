"""The runtime module: device names -> torch devices (inference and training rules), and
the one precision type."""

from __future__ import annotations

import pytest
import torch

from ciaosr.errors import CiaosrError
from ciaosr.runtime import PRECISIONS, Precision, resolve_device
from ciaosr.distributed import DistInfo
from ciaosr.training.trainer import training_device


@pytest.fixture
def machine(monkeypatch):
    """Pretend the machine has ``gpus`` CUDA devices and/or MPS."""
    def set_up(gpus: int = 0, mps: bool = False, current: int = 0):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: current)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    return set_up


def test_auto_prefers_cuda_then_mps_then_cpu(machine):
    machine(gpus=0, mps=False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
    machine(gpus=0, mps=True)
    assert resolve_device("auto") == torch.device("mps")
    machine(gpus=2, mps=True, current=1)
    assert resolve_device("auto") == torch.device("cuda", 1)  # the current device, with its index


def test_training_auto_skips_mps(machine):
    machine(gpus=0, mps=True)
    assert training_device("auto", DistInfo()) == torch.device("cpu")
    assert resolve_device("auto", allowed=("cpu", "cuda")) == torch.device("cpu")
    machine(gpus=1, mps=True)
    assert training_device("auto", DistInfo()) == torch.device("cuda", 0)
    assert training_device(None, DistInfo()) == torch.device("cuda", 0)


def test_explicit_names(machine):
    machine(gpus=2)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)


def test_torchrun_process_takes_its_local_gpu(machine):
    machine(gpus=2)
    info = DistInfo(rank=1, local_rank=1, world_size=2)
    assert training_device("cuda", info) == torch.device("cuda", 1)
    assert training_device("cuda:0", info) == torch.device("cuda", 1)  # every process its own GPU
    assert training_device("auto", info) == torch.device("cuda", 1)
    assert training_device("cpu", info) == torch.device("cpu")
    assert training_device("cuda:1", DistInfo()) == torch.device("cuda", 1)  # one process: as named
    with pytest.raises(CiaosrError, match=r"^LOCAL_RANK 2 but only 2 GPU\(s\) visible$"):
        training_device("cuda", DistInfo(rank=2, local_rank=2, world_size=3))


@pytest.mark.parametrize("name, gpus, mps, message", [
    ("gpu", 0, False, "unknown device 'gpu' (use auto, cpu, cuda, cuda:N or mps)"),
    ("cuda", 0, False, "device 'cuda' requested but CUDA is not available (use --device cpu or auto)"),
    ("cuda:0", 0, False, "device 'cuda' requested but CUDA is not available (use --device cpu or auto)"),
    ("cuda:2", 2, False, "device 'cuda:2' does not exist (2 CUDA device(s))"),
    ("mps", 0, False, "device 'mps' requested but MPS is not available (use --device cpu or auto)"),
    ("meta", 0, False, "unsupported device 'meta' (use auto, cpu, cuda, cuda:N or mps)"),
])
def test_device_errors_are_one_line(machine, name, gpus, mps, message):
    machine(gpus=gpus, mps=mps)
    with pytest.raises(CiaosrError) as err:
        resolve_device(name)
    assert str(err.value) == message


@pytest.mark.parametrize("name, message", [
    ("mps", "unsupported device 'mps' for training (use auto, cpu, cuda or cuda:N)"),
    ("gpu", "unknown device 'gpu' (use auto, cpu, cuda or cuda:N)"),
])
def test_training_refuses_other_devices(machine, name, message):
    machine(gpus=1, mps=True)
    with pytest.raises(CiaosrError) as err:
        training_device(name, DistInfo())
    assert str(err.value) == message


# --- precision -----------------------------------------------------------------------

FP16_ON_CPU = "fp16 needs a GPU (on the CPU it is slow and inaccurate): use bf16 or fp32"


@pytest.mark.parametrize("name, expected, dtype", [
    ("fp32", Precision.FP32, None),
    ("bf16", Precision.BF16, torch.bfloat16),
    ("fp16", Precision.FP16, torch.float16),
    ("none", Precision.FP32, None),  # old training configs' train.amp: none
])
def test_parse_each_name(name, expected, dtype):
    p = Precision.parse(name)
    assert p is expected and p.dtype == dtype
    assert Precision.parse(p) is p
    assert p.value in PRECISIONS


def test_names_for_choices():
    assert PRECISIONS == ("fp32", "bf16", "fp16")


@pytest.mark.parametrize("name", ["fp64", "FP32", "", "amp", None, 16])
def test_parse_refuses_other_names(name):
    with pytest.raises(CiaosrError) as err:
        Precision.parse(name)
    assert str(err.value) == f"unknown precision {name!r} (choose from fp32, bf16, fp16)"


def test_fp16_refused_on_cpu_with_one_message():
    with pytest.raises(CiaosrError) as err:
        Precision.FP16.check(torch.device("cpu"))
    assert str(err.value) == FP16_ON_CPU
    assert Precision.BF16.check(torch.device("cpu")) is Precision.BF16
    assert Precision.FP32.check(torch.device("cpu")) is Precision.FP32


def test_bf16_refused_on_a_gpu_without_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    with pytest.raises(CiaosrError) as err:
        Precision.BF16.check(torch.device("cuda", 0))
    assert str(err.value) == "bf16 is not supported by this GPU: use fp16 or fp32"
    assert Precision.FP16.check(torch.device("cuda", 0)) is Precision.FP16


def test_autocast_runs_in_the_precision_dtype():
    a, b = torch.rand(4, 8), torch.rand(8, 3)
    cpu = torch.device("cpu")
    with Precision.BF16.autocast(cpu):
        assert (a @ b).dtype == torch.bfloat16
    with Precision.FP32.autocast(cpu):
        assert (a @ b).dtype == torch.float32


@pytest.mark.parametrize("argv", [["eval", "--data-root", ".", "--precision", "fp64"],
                                  ["upscale", "x.png", "--precision", "amp"]])
def test_cli_precision_choices(argv, capsys):
    from ciaosr.cli.main import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "fp32" in err[0]


def test_only_fp16_training_gets_a_grad_scaler():
    import warnings

    assert Precision.FP32.grad_scaler() is None and Precision.BF16.grad_scaler() is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 'CUDA is not available. Disabling' on a CPU-only machine
        assert isinstance(Precision.FP16.grad_scaler(), torch.amp.GradScaler)


def test_auto_precision_is_bf16_only_where_the_hardware_has_it():
    cpu = torch.device("cpu")
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert Precision.for_device("auto", cpu) is (Precision.BF16 if native else Precision.FP32)
    assert Precision.for_device("fp32", cpu) is Precision.FP32
    with pytest.raises(CiaosrError, match="fp16 needs a GPU"):
        Precision.for_device("fp16", cpu)


# --- threads: auto follows other jobs ---------------------------------------------------

class _FakeMachine:
    """Stands in for ``runtime.time`` and /proc/stat: a wall clock, the machine's busy
    CPU seconds and this process's own CPU seconds, all moved by ``run``."""

    def __init__(self):
        self.wall = self.busy = self.own = 0.0

    def run(self, seconds: float, others: float, own: float = 0.0) -> None:
        """``seconds`` pass with ``others`` cores busy elsewhere and ``own`` here."""
        self.wall += seconds
        self.busy += seconds * (others + own)
        self.own += seconds * own

    def monotonic(self):
        return self.wall

    def process_time(self):
        return self.own

    def sleep(self, seconds):
        self.run(seconds, self.others_now)

    others_now = 0.0


@pytest.fixture
def cpus(monkeypatch):
    import os

    from ciaosr import runtime

    m = _FakeMachine()
    monkeypatch.setattr(runtime, "time", m)
    monkeypatch.setattr(runtime, "_machine_busy_seconds", lambda: m.busy)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(runtime, "_INITIAL_THREADS", 2)
    return m


def test_cpu_watch_counts_other_processes_not_this_one(cpus):
    from ciaosr.runtime import CpuWatch

    watch = CpuWatch()
    cpus.run(2.0, others=0.5, own=1.5)
    assert watch.others() == pytest.approx(0.5)
    cpus.run(1.0, others=0.0, own=2.0)  # this process alone: nobody else
    assert watch.others() == pytest.approx(0.0)


def test_auto_threads_follow_a_job_that_starts_and_ends(cpus):
    from ciaosr import runtime

    cpus.others_now = 0.0  # idle while set_threads watches
    assert runtime.set_threads("auto") == 2
    cpus.run(0.5, others=1.0, own=1.0)  # another job starts; too soon to check again
    runtime.recheck_threads()
    assert torch.get_num_threads() == 2
    cpus.run(1.0, others=1.0, own=1.0)
    runtime.recheck_threads()
    assert torch.get_num_threads() == 1  # one core is taken
    cpus.run(3.0, others=0.0, own=1.0)  # it ended
    runtime.recheck_threads()
    assert torch.get_num_threads() == 2
    runtime.set_threads(2)  # a fixed count stays fixed
    cpus.run(3.0, others=2.0, own=1.0)
    runtime.recheck_threads()
    assert torch.get_num_threads() == 2


def test_auto_threads_start_from_what_is_busy_now(cpus):
    from ciaosr import runtime

    cpus.others_now = 1.2  # a job running now, whatever the load average says
    assert runtime.set_threads("auto") == 1
    cpus.others_now = 0.3  # a job that ended seconds ago leaves nothing busy
    assert runtime.set_threads("auto") == 2


def test_cpu_watch_sees_a_real_busy_process():
    import subprocess
    import sys
    import time

    from ciaosr.runtime import CpuWatch, _machine_busy_seconds

    if _machine_busy_seconds() is None:
        pytest.skip("no /proc/stat on this system")
    spin = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 3: pass"])
    try:
        time.sleep(0.5)
        watch = CpuWatch()
        time.sleep(1.0)
        assert watch.others() >= 0.5  # the spinning child is at least half a core
    finally:
        spin.kill()


def test_without_proc_stat_auto_reads_the_load_average_at_once(monkeypatch):
    import os

    from ciaosr import runtime

    def no_sleep(seconds):
        raise AssertionError("nothing to watch: no need to wait")

    monkeypatch.setattr(runtime, "_machine_busy_seconds", lambda: None)
    monkeypatch.setattr(runtime.time, "sleep", no_sleep)
    monkeypatch.setattr(os, "getloadavg", lambda: (1.5, 0.0, 0.0))
    assert runtime.others_busy() == 1.5

"""Where and how a model runs: the device (``resolve_device``), the numeric precision
(``Precision``) and the number of CPU threads (``set_threads``), for the CLI, the
Python API, evaluation, training and the benchmarks alike.

Each is checked once, where a name comes in (command-line arguments, an API call, a
training config); the code below that boundary gets a ``torch.device`` and a
``Precision`` and checks nothing again.
"""

from __future__ import annotations

import contextlib
import enum
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence

import torch

from .errors import CiaosrError
from .options import PRECISIONS

#: The kinds of device a name may resolve to, in the order ``auto`` tries them.
DEVICE_TYPES = ("cuda", "mps", "cpu")


# --------------------------------------------------------------------------------------
# Device
# --------------------------------------------------------------------------------------
def _available(kind: str) -> bool:
    if kind == "cuda":
        return torch.cuda.is_available()
    if kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        return mps is not None and mps.is_available()
    return True


def _device_hint(allowed) -> str:
    names = ["auto", "cpu"] + (["cuda", "cuda:N"] if "cuda" in allowed else [])
    names += ["mps"] if "mps" in allowed else []
    return ", ".join(names[:-1]) + " or " + names[-1]


def resolve_device(device: str | torch.device | None = "cpu", *, allowed: tuple[str, ...] = DEVICE_TYPES,
                   local_rank: int | None = None, purpose: str | None = None) -> torch.device:
    """A device name -> a ``torch.device`` that exists here, or a one-line ``CiaosrError``.

    Names: ``auto`` (None too), ``cpu``, ``cuda``, ``cuda:N``, ``mps``. ``auto`` is the
    first of CUDA, MPS, CPU that is in ``allowed`` (the CPU always counts as allowed)
    and available: for inference CUDA, then MPS, then CPU; for training, which allows
    only ``("cpu", "cuda")``, CUDA if there is a GPU, else the CPU, even on a machine
    with MPS. A bare ``cuda`` is the current CUDA device, with its index (``cuda:0``
    unless ``torch.cuda.set_device`` chose another).

    ``local_rank``: set by a process of a torchrun job (its ``LOCAL_RANK``); CUDA then
    means ``cuda:<local_rank>`` whatever index was named, so that every process takes
    its own GPU. ``purpose`` names what a device outside ``allowed`` is refused for
    (e.g. ``"training"``).
    """
    name = "auto" if device is None else str(device)
    if name == "auto":
        name = next((kind for kind in DEVICE_TYPES if kind in allowed and _available(kind)), "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise CiaosrError(f"unknown device '{name}' (use {_device_hint(allowed)})") from None
    if dev.type not in allowed:
        where = f" for {purpose}" if purpose else ""
        raise CiaosrError(f"unsupported device '{name}'{where} (use {_device_hint(allowed)})")
    if not _available(dev.type):
        raise CiaosrError(f"device '{dev.type}' requested but {dev.type.upper()} is not available "
                          f"(use --device cpu or auto)")
    if dev.type == "cuda":
        count = torch.cuda.device_count()
        if local_rank is not None:
            if local_rank >= count:
                raise CiaosrError(f"LOCAL_RANK {local_rank} but only {count} GPU(s) visible")
            return torch.device("cuda", local_rank)
        if dev.index is None:
            return torch.device("cuda", torch.cuda.current_device())
        if dev.index >= count:
            raise CiaosrError(f"device '{name}' does not exist ({count} CUDA device(s))")
    return dev


# --------------------------------------------------------------------------------------
# Precision
# --------------------------------------------------------------------------------------
def _cpu_has_native_bf16() -> bool:
    cpu = getattr(torch, "cpu", None)
    return any(bool(getattr(cpu, probe, lambda: False)())
               for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


#: The one line printed (once per process) when bf16 is asked for on a CPU without it.
SLOW_BF16_WARNING = ("warning: this CPU has no native bf16 (AVX512-BF16 or AMX), so bf16 runs emulated and far slower "
                     "than fp32 (57x on one thread of an AMD EPYC Zen 3, as reported; measure yours with "
                     "benchmarks/bf16_matmul.py): use fp32, or precision auto")
_slow_bf16_warned = False


def _warn_slow_bf16() -> None:
    """Print ``SLOW_BF16_WARNING`` to stderr, the first time only."""
    global _slow_bf16_warned
    if not _slow_bf16_warned:
        _slow_bf16_warned = True
        print(SLOW_BF16_WARNING, file=sys.stderr, flush=True)


#: Old names still read: ``train.amp: none`` in training configs and states.
_ALIASES = {"none": "fp32"}


class Precision(enum.Enum):
    """The precision a model runs in: ``fp32``; ``bf16`` or ``fp16`` through
    ``torch.autocast`` (the weights stay fp32; metrics and losses are computed in fp32).

    ``fp16`` needs a GPU: on the CPU half-precision kernels are slow or missing and lose
    accuracy (use bf16 there). ``bf16`` runs on the CPU and on GPUs that support it.
    """

    FP32, BF16, FP16 = PRECISIONS  # "fp32", "bf16", "fp16": their names (torch-free, for the parsers)

    @classmethod
    def for_device(cls, name: str | Precision, device: torch.device) -> Precision:
        """``parse`` plus ``'auto'``, checked for ``device``: bf16 where the hardware
        computes it natively (CPUs with AVX512-BF16 or AMX, CUDA GPUs with bf16), else
        fp32. With the shipped model bf16 moved PSNR by at most 0.0085 dB on Set5, Set14
        (x2, x4) and Urban100 x4 (docs/performance.md), and runs about 2.5x faster on
        such CPUs."""
        if name == "auto":
            native = (device.type == "cuda" and torch.cuda.is_bf16_supported()) or (
                device.type == "cpu" and _cpu_has_native_bf16())
            return cls.BF16 if native else cls.FP32
        return cls.parse(name).check(device)

    @classmethod
    def parse(cls, name: str | Precision) -> Precision:
        """``'fp32'``, ``'bf16'`` or ``'fp16'`` (or a ``Precision``) -> the ``Precision``.
        ``'none'`` is a deprecated alias of ``fp32`` (old training configs' ``train.amp``)."""
        if isinstance(name, cls):
            return name
        try:
            return cls(_ALIASES.get(name, name))
        except (ValueError, TypeError):
            raise CiaosrError(f"unknown precision {name!r} (choose from {', '.join(PRECISIONS)})") from None

    def check(self, device: torch.device) -> Precision:
        """``self`` if it can run on ``device``; else a ``CiaosrError`` saying why. bf16
        on a CPU without native bf16 runs, but far slower than fp32: the first such
        check of the process prints ``SLOW_BF16_WARNING`` (one line, stderr)."""
        if self is Precision.FP16 and device.type == "cpu":
            raise CiaosrError("fp16 needs a GPU (on the CPU it is slow and inaccurate): use bf16 or fp32")
        if self is Precision.BF16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise CiaosrError("bf16 is not supported by this GPU: use fp16 or fp32")
        if self is Precision.BF16 and device.type == "cpu" and not _cpu_has_native_bf16():
            _warn_slow_bf16()
        return self

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype (None for fp32: no autocast)."""
        return {Precision.FP32: None, Precision.BF16: torch.bfloat16, Precision.FP16: torch.float16}[self]

    def autocast(self, device: torch.device):
        """The context to run the model in on ``device``: ``torch.autocast`` to
        ``dtype``, or a null context for fp32."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        """For training: fp16 gradients underflow without loss scaling, so fp16 (GPU
        only) gets a ``GradScaler``; the other precisions need none."""
        return torch.amp.GradScaler("cuda") if self is Precision.FP16 else None


# --------------------------------------------------------------------------------------
# CPU threads
# --------------------------------------------------------------------------------------
#: How long ``set_threads("auto")`` watches the CPUs before it chooses (seconds).
AUTO_SAMPLE_S = 0.2
#: The least time between two re-checks of an automatic thread count (seconds).
RECHECK_S = 1.0
#: torch's thread count before this package changed it (``OMP_NUM_THREADS``, else one
#: per core): the most ``auto`` takes in one process.
_INITIAL_THREADS = torch.get_num_threads()


def _machine_busy_seconds() -> float | None:
    """CPU time all cores have spent busy since boot (user, nice, system, irq, softirq;
    not idle, iowait or steal), from Linux's /proc/stat; None where there is none."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        ticks = [int(x) for x in fields[1:8]]
        return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class CpuWatch:
    """What other processes compute now, in cores: between two readings, the machine's
    busy CPU time (/proc/stat) less this process's own (``time.process_time``, all its
    threads), over the wall time between. Unlike the load average, which still counts a
    job for a minute after it ended, this sees a job start or end at once."""

    def __init__(self) -> None:
        self._mark = self._read()

    @staticmethod
    def _read() -> tuple[float, float, float] | None:
        busy = _machine_busy_seconds()
        return None if busy is None else (time.monotonic(), busy, time.process_time())

    def since_mark(self) -> float:
        """Seconds since the last reading (inf where /proc/stat cannot be read)."""
        return float("inf") if self._mark is None else time.monotonic() - self._mark[0]

    def others(self) -> float | None:
        """Cores other processes kept busy since the last reading (which this one
        replaces); None without /proc/stat."""
        now, then = self._read(), self._mark
        self._mark = now
        if now is None or then is None or now[0] <= then[0]:
            return None
        return max(0.0, (now[1] - then[1] - (now[2] - then[2])) / (now[0] - then[0]))


def others_busy(sample_s: float = AUTO_SAMPLE_S) -> float:
    """Cores other processes keep busy: watched for ``sample_s`` seconds (``CpuWatch``),
    or, where /proc/stat cannot be read, the 1-minute load average."""
    if _machine_busy_seconds() is not None:
        watch = CpuWatch()
        time.sleep(sample_s)
        busy = watch.others()
        if busy is not None:
            return busy
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def free_cores(processes: int = 1, busy: float | None = None) -> int:
    """Cores not busy with other work: the core count less what other processes keep
    busy (``busy`` cores, else ``others_busy()``; rounded to the nearest core), at least 1.
    OpenMP threads that share a core with another process wait on each other: on a
    2-core machine with other jobs, one thread was 5.9x faster than two for ``ciaosr
    upscale``, and with none two were 1.8x faster than one (docs/performance.md, CPU
    threads).

    ``processes``: the processes of one job on this machine (torchrun's
    ``LOCAL_WORLD_SIZE``), which share those cores: each gets an equal part, at least 1.
    One process counts no more cores than torch would use (``OMP_NUM_THREADS``); several
    count the machine's, as torchrun sets ``OMP_NUM_THREADS=1`` in each."""
    if busy is None:
        busy = others_busy()
    cores = os.cpu_count() or 1
    cap = _INITIAL_THREADS if processes <= 1 else cores
    return max(1, min(cap, cores - int(busy + 0.5)) // max(1, processes))


class _AutoThreads:
    """An automatic thread count that follows other jobs: ``recheck`` (between tiles and
    images) chooses again from what the others computed since the last check."""

    def __init__(self) -> None:
        self.watch = CpuWatch()

    def recheck(self) -> None:
        if self.watch.since_mark() < RECHECK_S:
            return
        busy = self.watch.others()
        if busy is not None:
            n = free_cores(busy=busy)
            if n != torch.get_num_threads():
                torch.set_num_threads(n)


_auto_threads: _AutoThreads | None = None


def recheck_threads() -> None:
    """Where ``set_threads("auto")`` chose the thread count of one process, choose again
    from what other processes computed since the last check (at most once per
    ``RECHECK_S``; nothing otherwise). Call it between units of work (tiles, images), in
    the thread that set the count."""
    if _auto_threads is not None:
        _auto_threads.recheck()


def set_threads(threads: int | str | None, processes: int = 1) -> int:
    """Set the CPU threads torch computes with (``torch.set_num_threads``) and return the
    number in use; None leaves PyTorch's choice (one per core), ``'auto'`` takes
    :func:`free_cores` and, in one process, follows other jobs from then on
    (:func:`recheck_threads`). With ``processes`` > 1 (the processes of one torchrun job
    on this machine) None and ``'auto'`` give each process its part of the cores, at least
    one; a number is per process. Call it before any work: the thread pool is sized on
    first use."""
    global _auto_threads
    _auto_threads = None
    if threads == "auto":
        threads = free_cores(processes)
        if processes <= 1:
            _auto_threads = _AutoThreads()
    elif threads is None and processes > 1:
        threads = max(1, (os.cpu_count() or 1) // processes)
    elif isinstance(threads, str):
        try:
            threads = int(threads)
        except ValueError:
            raise CiaosrError(f"--threads must be a whole number of at least 1 or 'auto', got {threads!r}") from None
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise CiaosrError(f"--threads must be a whole number of at least 1, got {threads!r}")
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def chunk_workers(x: torch.Tensor, chunks: int) -> int:
    """How many threads should decode ``chunks`` independent chunks of queries on ``x``'s
    device side by side, one thread each: torch's thread count on the CPU in inference
    (under autograd the chunks would share one graph), else 1."""
    if x.device.type != "cpu" or torch.is_grad_enabled() or chunks < 2:
        return 1
    return min(torch.get_num_threads(), chunks)


def side_by_side(work: Callable[[int], None], items: Sequence[int], workers: int) -> None:
    """``work(item)`` for every item, on ``workers`` threads that each compute with one
    torch thread, without autograd and under the caller's CPU autocast, taking the items
    in order as they get free.

    Small products split over all threads spend much of their time starting and joining
    the threads; whole chunks decoded side by side do not (docs/performance.md,
    ``benchmarks/parallel_chunks.py``). Each worker sets its own thread count (OpenMP's
    is per thread); the caller's is set again afterwards, since torch also keeps the
    last count set as a process-wide default for new threads. The first exception of a
    ``work`` call (a cancelling progress callback, say) stops the others from taking new
    items and is raised here once they have finished theirs; so is an interrupt (Ctrl-C)
    that arrives while waiting."""
    threads = torch.get_num_threads()
    queue = iter(items)
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[BaseException] = []

    cast = torch.is_autocast_enabled("cpu")
    cast_dtype = torch.get_autocast_dtype("cpu")

    def loop() -> None:
        torch.set_num_threads(1)
        # Autograd's and autocast's switches are per thread: a worker takes the caller's.
        with torch.no_grad(), torch.autocast("cpu", dtype=cast_dtype, enabled=cast):
            while not stop.is_set():
                with lock:
                    item = next(queue, None)
                if item is None:
                    return
                try:
                    work(item)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                    errors.append(exc)
                    stop.set()

    pool = [threading.Thread(target=loop, name=f"ciaosr-chunk-{k}", daemon=True) for k in range(workers)]
    try:
        for thread in pool:
            thread.start()
        for thread in pool:
            while thread.is_alive():
                thread.join(0.1)  # in slices, so that Ctrl-C reaches this thread
    except BaseException:
        stop.set()
        for thread in pool:
            thread.join()
        raise
    finally:
        torch.set_num_threads(threads)
    if errors:
        raise errors[0]


__all__ = ["DEVICE_TYPES", "PRECISIONS", "CpuWatch", "Precision", "SLOW_BF16_WARNING", "chunk_workers", "free_cores",
           "others_busy", "recheck_threads", "side_by_side", "resolve_device", "set_threads"]

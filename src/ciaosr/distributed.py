"""The processes of one job under PyTorch's own launcher: which one this is, its device,
and what they share.

``torchrun --nproc_per_node=K -m ciaosr <command> ...`` starts K processes per node
(several nodes through torchrun's rendezvous) and sets ``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``; without them
everything runs in one process (rank 0 of 1). Each process computes on its own GPU
(``cuda:<LOCAL_RANK>``) where there are GPUs, else on the CPU.

- Training (``ciaosr train``) joins the process group (NCCL on GPUs, gloo on the CPU)
  and averages gradients: ``init_process_group``, ``barrier``, ``max_int``,
  ``mean_scalar``, ``cleanup``.
- ``ciaosr upscale`` and ``ciaosr eval`` split independent images over the processes:
  :class:`ShardGroup`. Every process makes the same list of items; ``share`` gives each
  its part (``sharding.balance`` of the items' costs), :class:`Results` brings every
  item's result to rank 0 as it is done (rank 0 shows the one progress bar and the
  report), and ``announce`` gives every process rank 0's verdict (the exit status).
  Waiting for another process is done by polling the job's key-value store, never in a
  collective with a timeout: one process on a long image keeps the others waiting as
  long as it takes, and a process that dies ends the job (torchrun stops the others).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
import torch.distributed as dist

from . import runtime
from .errors import CiaosrError
from .sharding import balance

#: Seconds between two looks at the store while waiting for other processes.
POLL_S = 0.1


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1  # the job's processes on this machine

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def dist_info_from_env() -> DistInfo:
    """The process's place in a torchrun job (rank 0 of 1 when not launched by torchrun)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    except ValueError:
        raise CiaosrError("WORLD_SIZE, RANK, LOCAL_RANK and LOCAL_WORLD_SIZE must be integers") from None
    if world < 1 or not 0 <= rank < world or not 1 <= local_world <= world:
        raise CiaosrError(f"bad distributed setting: RANK={rank}, WORLD_SIZE={world}, "
                          f"LOCAL_WORLD_SIZE={local_world}")
    return DistInfo(rank, local, world, local_world)


def device_for(requested: str | None, info: DistInfo, *, allowed: tuple[str, ...] = runtime.DEVICE_TYPES,
               purpose: str | None = None) -> torch.device:
    """This process's device, through the one resolver (``runtime.resolve_device``):
    under torchrun CUDA means ``cuda:<LOCAL_RANK>``, so every process takes its own GPU."""
    return runtime.resolve_device(requested or "auto", allowed=allowed, purpose=purpose,
                                  local_rank=info.local_rank if info.enabled else None)


def set_threads(threads: int | str | None, info: DistInfo) -> int:
    """``runtime.set_threads`` for one of this machine's ``local_world_size`` processes:
    ``auto`` and None share the cores among them (at least one thread each)."""
    return runtime.set_threads(threads, processes=info.local_world_size)


def init_process_group(info: DistInfo, device: torch.device | None = None,
                       backend: str | None = None) -> dist.Store | None:
    """Join the job's process group (``backend``: NCCL on a GPU, gloo otherwise) and
    return the job's key-value store, shared by all its processes (None in one process)."""
    if not info.enabled or dist.is_initialized():
        return None
    store, _, _ = next(dist.rendezvous("env://", info.rank, info.world_size))
    if backend is None:
        backend = "nccl" if device is not None and device.type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(device)
        try:
            dist.init_process_group("nccl", store=store, rank=info.rank, world_size=info.world_size,
                                    device_id=device)
        except TypeError:  # torch < 2.3 has no device_id
            dist.init_process_group("nccl", store=store, rank=info.rank, world_size=info.world_size)
    else:
        dist.init_process_group(backend, store=store, rank=info.rank, world_size=info.world_size)
    return dist.PrefixStore("ciaosr/", store)


def barrier(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()


def max_int(value: int, info: DistInfo, device: torch.device) -> int:
    """The largest ``value`` over all processes (e.g. the strongest reason to stop)."""
    if not (info.enabled and dist.is_initialized()):
        return value
    t = torch.tensor([int(value)], dtype=torch.int32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def mean_scalar(value: float, info: DistInfo, device: torch.device) -> float:
    """The mean of one number over all processes (for logging the loss)."""
    if not (info.enabled and dist.is_initialized()):
        return value
    t = torch.tensor([float(value)], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item()) / info.world_size


def cleanup(info: DistInfo, synchronise: bool = True) -> None:
    """Final barrier (skipped after an error, when the others may never reach it), then
    leave the process group."""
    if info.enabled and dist.is_initialized():
        try:
            if synchronise:
                dist.barrier()
        finally:
            dist.destroy_process_group()


# --------------------------------------------------------------------------------------
# Independent items split over the processes
# --------------------------------------------------------------------------------------
class ShardGroup:
    """The processes of a job that runs independent items (images), each item in one
    process. In one process (no torchrun) every method is the plain local computation,
    so a command runs the same code with and without torchrun.

    Every process must call the methods in the same order (they are matched by count).
    """

    def __init__(self, info: DistInfo | None = None, store: dist.Store | None = None):
        self.info = info or DistInfo()
        self.store = store
        self._keys = 0  # names the store keys of each exchange, the same in every process

    @classmethod
    def join(cls, info: DistInfo | None = None) -> ShardGroup:
        """This process's group: torchrun's processes (they exchange only small messages,
        so over gloo, also on GPUs), or this process alone."""
        info = info or dist_info_from_env()
        if info.enabled and dist.is_initialized():
            raise CiaosrError("this process has already joined a process group: run the command on its own")
        return cls(info, init_process_group(info, backend="gloo"))

    @property
    def rank(self) -> int:
        return self.info.rank

    @property
    def size(self) -> int:
        return self.info.world_size

    @property
    def is_main(self) -> bool:
        return self.info.is_main

    def _key(self, what: str) -> str:
        self._keys += 1
        return f"{what}{self._keys}/"

    def same_items(self, items: Sequence) -> None:
        """Raise unless every process has the same ``items`` (they differ when a folder
        changed while the processes listed it); every process raises alike."""
        if self.size == 1:
            return
        every: list = [None] * self.size
        dist.all_gather_object(every, hashlib.sha256(pickle.dumps(list(items))).hexdigest())
        if len(set(every)) > 1:
            raise CiaosrError("the processes found different images (did a folder change while they listed "
                              "it?): run again")

    def map(self, n: int, fn: Callable[[int], Any]) -> list:
        """``[fn(0), ..., fn(n - 1)]`` in every process, each process computing every
        ``size``-th. Also a barrier: no process goes on before all have run ``fn``."""
        if self.size == 1:
            return [fn(i) for i in range(n)]
        mine = [fn(i) for i in range(self.rank, n, self.size)]
        every: list = [None] * self.size
        dist.all_gather_object(every, mine)
        out: list = [None] * n
        for r, values in enumerate(every):
            out[r::self.size] = values
        return out

    def share(self, n: int, cost: Callable[[int], float]) -> list[int]:
        """The indices (of ``n`` items) this process runs, in increasing order: the
        processes measure ``cost`` of every item between them (``map``), then each takes
        its part of the same ``sharding.balance``. One process: all, costs not measured."""
        if self.size == 1:
            return list(range(n))
        return balance(self.map(n, cost), self.size)[self.rank]

    def results(self, total: int, on_result: Callable[[int, Any], None] | None = None) -> Results:
        """Collect ``total`` results, indexed 0..total-1, on rank 0 (see :class:`Results`)."""
        return Results(self, total, on_result)

    def announce(self, value: Any = None) -> Any:
        """Rank 0's ``value``, in every process (waiting for it by polling the store)."""
        if self.size == 1:
            return value
        key = self._key("announce") + "value"
        if self.is_main:
            self.store.set(key, pickle.dumps(value))
            return value
        while not self.store.check([key]):
            time.sleep(POLL_S)
        return pickle.loads(self.store.get(key))

    def close(self, synchronise: bool = True) -> None:
        """Leave the process group (after a barrier unless ``synchronise`` is False, e.g.
        after an error, when the others may never reach it)."""
        cleanup(self.info, synchronise)


class Results:
    """Results of items run in several processes, collected on rank 0.

    Each process ``put``s the results of its items; on rank 0 ``on_result(index,
    value)`` is called for every result as it arrives (from a thread that looks at the
    store every ``POLL_S`` while rank 0 works; in one process at once, from ``put``), and
    ``gather`` returns them all in index order. Use it as a context manager (the thread
    runs inside it).
    """

    def __init__(self, group: ShardGroup, total: int, on_result: Callable[[int, Any], None] | None):
        self.group, self.total, self.on_result = group, total, on_result
        self.values: dict[int, Any] = {}
        self._prefix = group._key("results")
        self._sent = 0
        self._seen = [0] * group.size
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def __enter__(self) -> Results:
        if self.group.size > 1 and self.group.is_main:
            self._thread = threading.Thread(target=self._watch, name="ciaosr-results", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop_watching()

    def put(self, index: int, value: Any) -> None:
        store = self.group.store
        if store is None:
            self._arrive(index, value)
            return
        rank = self.group.rank
        store.set(f"{self._prefix}{rank}/{self._sent}", pickle.dumps((index, value)))
        self._sent += 1
        store.add(f"{self._prefix}{rank}/count", 1)  # after the value: a counted value is there

    def gather(self) -> list | None:
        """Rank 0: every result, in index order, once all have arrived (the other
        processes' too: waits by polling). Other processes: None, at once."""
        if not self.group.is_main:
            return None
        self._stop_watching()
        while len(self.values) < self.total:
            self._poll()
            if len(self.values) < self.total:
                time.sleep(POLL_S)
        return [self.values[i] for i in range(self.total)]

    def _arrive(self, index: int, value: Any) -> None:
        if index in self.values or not 0 <= index < self.total:
            raise RuntimeError(f"result {index} arrived twice or is out of range (0..{self.total - 1})")
        self.values[index] = value
        if self.on_result is not None:
            self.on_result(index, value)

    def _poll(self) -> None:
        store = self.group.store
        if store is None:
            return
        with self._lock:
            for r in range(self.group.size):
                count = store.add(f"{self._prefix}{r}/count", 0)
                for k in range(self._seen[r], count):
                    self._arrive(*pickle.loads(store.get(f"{self._prefix}{r}/{k}")))
                self._seen[r] = count

    def _watch(self) -> None:
        try:
            while not self._stop.wait(POLL_S):
                self._poll()
        except BaseException as exc:  # handed to the main thread by _stop_watching
            self._error = exc

    def _stop_watching(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error


__all__ = ["DistInfo", "POLL_S", "Results", "ShardGroup", "barrier", "cleanup", "device_for", "dist_info_from_env",
           "init_process_group", "max_int", "mean_scalar", "set_threads"]

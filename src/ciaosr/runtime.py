"""Where a model runs: the device (``resolve_device``), for the CLI, the Python API,
evaluation, training and the benchmarks alike.

A device name is checked once, where it comes in (command-line arguments, an API call,
a training config); the code below that boundary gets a ``torch.device``.
"""

from __future__ import annotations

import torch

from .errors import CiaosrError

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


__all__ = ["DEVICE_TYPES", "resolve_device"]

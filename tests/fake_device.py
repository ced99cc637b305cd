"""A stand-in GPU for the placement tests (tests/test_device_placement.py).

PyTorch's CPU build cannot make fake CUDA tensors go through copies (``.to("cuda")``,
``copy_``, random fills: "PyTorch is not linked with support for cuda devices"), so the
stand-in is the ``meta`` device: tensors with shapes, dtypes and a device but no data.
Where the code runs "on the device", every tensor is on ``meta``; a tensor made without
``device=`` lands on the CPU. ``FakeGpu``, a dispatch mode, then:

* fails any operation that mixes a CPU tensor of one or more dimensions with device
  tensors (as CUDA does; a 0-dim CPU tensor is a scalar CUDA accepts). The meta kernels
  alone miss some of these (a CPU matrix times a meta one passes);
* lets the explicit transfers through (``.to``, ``copy_``), and gives what a transfer
  back to the CPU would have: ones of the right shape and dtype (``.cpu()``; ``.item()``
  is 1: a scale factor, a count, a flag the code can go on with). The numbers are
  meaningless; the placement and the shapes are what is tested.
"""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

DEVICE = torch.device("meta")
_aten = torch.ops.aten
_TRANSFERS = {_aten._to_copy.default, _aten.copy_.default, _aten.lift_fresh.default}


class MixedDevices(AssertionError):
    """A CPU tensor was mixed into work on the device."""


def _is_device(t: torch.Tensor) -> bool:
    return t.device.type == DEVICE.type


class FakeGpu(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        if func not in _TRANSFERS and any(_is_device(t) for t in tensors):
            cpu = [tuple(t.shape) for t in tensors if t.device.type == "cpu" and t.dim() > 0]
            if cpu:
                raise MixedDevices(f"{func}: CPU tensor(s) of shape {cpu} mixed into work on the device")
        if func is _aten._to_copy.default and _is_device(args[0]) and \
                torch.device(kwargs.get("device") or DEVICE).type == "cpu":
            return torch.ones(args[0].shape, dtype=kwargs.get("dtype") or args[0].dtype)
        if func is _aten.copy_.default and args[0].device.type == "cpu" and _is_device(args[1]):
            return args[0]
        if func is _aten._local_scalar_dense.default and _is_device(args[0]):
            return 1.0 if args[0].dtype.is_floating_point else 1
        return func(*args, **kwargs)

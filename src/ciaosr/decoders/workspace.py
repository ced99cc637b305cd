"""Reusable activation buffers for the per-query decoding of one prepared image.

Decoding a whole image runs the same products on thousands of chunks of the same size.
Writing each product into a fresh tensor costs, on the CPU, an extra pass over memory
per product: ``addmm`` copies its input matrix into the new result before multiplying
in place, advanced indexing allocates and fills through a slower kernel than
``index_select(out=)``. Writing into buffers kept from the previous chunk removes
those passes (docs/performance.md, "What changed").

Buffers are taken by name and handed out again for the next request of that name, so a
caller may hold a named buffer only until it takes the same name again. Each thread
has its own set, so chunks decoded on several threads never share one. Buffers are
used only for inference: under autograd the results must be fresh tensors that the
backward pass can keep. Under autocast the products cast their inputs themselves (to
:func:`product_dtype`), as autocast would.
"""

from __future__ import annotations

import contextlib
import math
import threading

import torch


def reusable() -> bool:
    """Whether products may write into workspace buffers: in inference."""
    return not torch.is_grad_enabled()


def product_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype a matrix product on ``x`` computes in: autocast's where it is on (for
    products written with ``out=``, which autocast does not cast), else ``x``'s. A device
    type autocast does not know (``meta``, which the device-placement test runs on) has
    none."""
    kind = x.device.type
    try:
        return torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else x.dtype
    except RuntimeError:  # "unknown device type for autocast"
        return x.dtype


def autocast_off(device: torch.device):
    """A context where ``device``'s autocast is off (for sums that must stay float32);
    nothing to do on a device type autocast does not know (``meta``)."""
    try:
        return torch.autocast(device.type, enabled=False)
    except RuntimeError:
        return contextlib.nullcontext()


class Workspace:
    """Named buffers that grow to the largest size asked and are reused after that."""

    def __init__(self):
        self._local = threading.local()

    def take(self, name: str, shape: tuple[int, ...], like: torch.Tensor,
             dtype: torch.dtype | None = None) -> torch.Tensor:
        """An uninitialised tensor of ``shape`` on ``like``'s device and in ``dtype``
        (default ``like``'s), whose memory is the buffer called ``name`` (valid until
        ``name`` is taken again)."""
        dtype = like.dtype if dtype is None else dtype
        buffers = self._local.__dict__.setdefault("buffers", {})
        numel = math.prod(shape)
        buf = buffers.get(name)
        if buf is None or buf.numel() < numel or buf.dtype != dtype or buf.device != like.device:
            buffers[name] = buf = torch.empty(numel, dtype=dtype, device=like.device)
        return buf[:numel].view(shape)

"""Turning a device name from the command line or a config into a ``torch.device``."""

from __future__ import annotations

import torch

from .errors import CiaosrError


def resolve_device(device: str | torch.device | None = "cpu") -> torch.device:
    """'auto' (CUDA, then MPS, then CPU), 'cpu', 'cuda', 'cuda:N' or 'mps'."""
    name = "auto" if device is None else str(device)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise CiaosrError(f"unknown device '{name}' (use auto, cpu, cuda, cuda:N or mps)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise CiaosrError("device 'cuda' requested but CUDA is not available (use --device cpu or auto)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise CiaosrError(f"device '{name}' does not exist ({torch.cuda.device_count()} CUDA device(s))")
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise CiaosrError("device 'mps' requested but MPS is not available (use --device cpu or auto)")
    elif dev.type != "cpu":
        raise CiaosrError(f"unsupported device '{name}' (use auto, cpu, cuda, cuda:N or mps)")
    return dev

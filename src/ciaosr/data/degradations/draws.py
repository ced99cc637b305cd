"""Every random number of a degradation, drawn from one ``torch.Generator``.

The generator may live on the CPU or on the images' device. Draws are made on the
generator's device (torch requires it) and the results moved to the images' device, so
a generator on the images' device costs no copies; a CPU generator with CUDA images
works too, at the price of copying each noise field. The same seed on the same
generator device gives the same numbers, hence the same degraded batch; a CPU and a
CUDA generator with the same seed give different (equally valid) streams.

Values meant per batch come back as Python numbers, values meant per sample as
tensors of length ``n`` on the images' device.
"""

from __future__ import annotations

from typing import Sequence

import torch


class Draws:
    """Random draws from ``generator``, delivered on ``device`` (the images')."""

    def __init__(self, generator: torch.Generator, device: torch.device | str):
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        self.generator = generator
        self.source = generator.device
        self.device = torch.device(device)
        # Parameters are drawn in float64 where the generator's device has it (not MPS).
        self.exact = torch.float32 if self.source.type == "mps" else torch.float64

    def _out(self, t: torch.Tensor) -> torch.Tensor:
        return t.to(self.device)

    # -- per-sample tensors (n given) or one Python number (n None) ----------------------
    def uniform(self, lo: float, hi: float, n: int | None = None):
        """U[lo, hi): a float, or a float32 tensor of ``n``."""
        u = torch.rand(1 if n is None else n, generator=self.generator, device=self.source, dtype=self.exact)
        v = lo + (hi - lo) * u
        return float(v) if n is None else self._out(v.float())

    def bernoulli(self, p: float, n: int | None = None):
        """True with probability ``p``: a bool, or a bool tensor of ``n``."""
        u = torch.rand(1 if n is None else n, generator=self.generator, device=self.source, dtype=self.exact)
        hit = u < p
        return bool(hit) if n is None else self._out(hit)

    def choice(self, probs: Sequence[float], n: int | None = None):
        """Index drawn with probabilities ``probs``: an int, or a long tensor of ``n``."""
        weights = torch.as_tensor(list(probs), dtype=self.exact, device=self.source)
        idx = torch.multinomial(weights, 1 if n is None else n, replacement=True, generator=self.generator)
        return int(idx) if n is None else self._out(idx)

    def integers(self, lo: int, hi: int, n: int | None = None):
        """Whole numbers in [lo, hi] (both ends included)."""
        v = torch.randint(int(lo), int(hi) + 1, (1 if n is None else n,), generator=self.generator,
                          device=self.source)
        return int(v) if n is None else self._out(v)

    def permutation(self, n: int) -> list[int]:
        return torch.randperm(n, generator=self.generator, device=self.source).tolist()

    # -- fields ---------------------------------------------------------------------------
    def normal(self, shape: Sequence[int], dtype=torch.float32) -> torch.Tensor:
        """Standard normal values of ``shape`` on the images' device."""
        return self._out(torch.randn(tuple(shape), generator=self.generator, device=self.source, dtype=dtype))

    def rand(self, shape: Sequence[int], dtype=torch.float32) -> torch.Tensor:
        """U[0, 1) values of ``shape`` on the images' device."""
        return self._out(torch.rand(tuple(shape), generator=self.generator, device=self.source, dtype=dtype))

    def poisson(self, rates: torch.Tensor) -> torch.Tensor:
        """Poisson counts with the given rates, on the rates' device."""
        return torch.poisson(rates.to(self.source), generator=self.generator).to(rates.device)

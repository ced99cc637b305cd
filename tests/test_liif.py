"""LIIF's fast path equals its reference (LIIF's own computation) for every switch."""

from __future__ import annotations

import pytest
import torch

import ciaosr
from ciaosr.decoders.reference import reference_model
from ciaosr.geometry import make_cell, make_coord


@pytest.mark.parametrize("switches", [
    {}, {"local_ensemble": False}, {"feat_unfold": False}, {"cell_decode": False},
], ids=["all-on", "no-ensemble", "no-unfold", "no-cell"])
def test_liif_fast_equals_reference(switches):
    fast = ciaosr.build_model("edsr-baseline-liif", {"num_blocks": 1, "mid_channels": 8},
                              {"hidden": [32, 32], **switches})
    ref = reference_model(fast)
    lr = torch.rand(2, 3, 6, 7)
    coord = make_coord((13, 25)).unsqueeze(0).expand(2, -1, -1)
    cell = make_cell((13, 25), 13 * 25).unsqueeze(0).expand(2, -1, -1)
    a, b = fast(lr, coord, cell), ref(lr, coord, cell)
    assert (a - b).abs().max().item() < 1e-5
    params = list(fast.parameters())  # shared by both
    grads = torch.autograd.grad(a.abs().mean(), params)
    ref_grads = torch.autograd.grad(b.abs().mean(), params)
    for (n, _), g, r in zip(fast.named_parameters(), grads, ref_grads):
        assert torch.allclose(g, r, rtol=1e-4, atol=1e-7), n

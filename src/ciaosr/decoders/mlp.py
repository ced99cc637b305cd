"""The MLP shared by the implicit decoders: hidden Linear + activation layers (ReLU, or
GELU for ITSRN), then a Linear.

Parameters are ``layers.{0,2,4,...}``, the layout of the official LIIF, LTE, ITSRN and
CiaoSR checkpoints.

The fast decoding paths run an MLP in pieces (a first layer split into a per-LR-pixel
half and a per-query half, hidden layers up to some point): :func:`first_layer` and
:func:`run_layers`, which in inference write into a :class:`Workspace`'s buffers.
``MLP.forward`` itself stays the plain layer-by-layer computation, as the official code
runs it (the reference modes use it).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from . import gemm
from .workspace import Workspace, product_dtype, reusable


ACTIVATIONS = {"relu": lambda: nn.ReLU(inplace=True), "gelu": nn.GELU}


class MLP(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, hidden: Sequence[int] = (256, 256, 256, 256),
                 act: str = "relu"):
        super().__init__()
        if act not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, not {act!r}")
        layers: list[nn.Module] = []
        last = in_dim
        for width in hidden:
            layers += [nn.Linear(last, width), ACTIVATIONS[act]()]
            last = width
        layers.append(nn.Linear(last, out_dim))
        self.layers = nn.Sequential(*layers)
        self.in_dim = in_dim
        self.out_dim = out_dim

    def forward(self, x):
        shape = x.shape[:-1]
        return self.layers(x.reshape(-1, x.shape[-1])).view(*shape, -1)


def split_first_layer(mlp: MLP, feat_dim: int):
    """(W_feat, b, W_pos) of an MLP whose input is cat[feature, position inputs]."""
    first = mlp.layers[0]
    return first.weight[:, :feat_dim], first.bias, first.weight[:, feat_dim:]


def first_layer(table: torch.Tensor, rows: torch.Tensor, pos: torch.Tensor, w_pos: torch.Tensor,
                ws: Workspace | None = None, name: str = "first") -> torch.Tensor:
    """Pre-activation of a split first layer: the per-pixel half (``table``, bias
    included) gathered at ``rows``, plus ``pos @ w_pos.T``, in one fused multiply-add.
    pos: (N, P) -> (N, hidden); in inference, into the buffer ``name`` of ``ws``."""
    if not reusable():
        return torch.addmm(table.index_select(0, rows), pos, w_pos.t())
    out = None if ws is None else ws.take(name, (rows.shape[0], table.shape[1]), table)
    gathered = torch.index_select(table, 0, rows, out=out) if out is not None else table.index_select(0, rows)
    return gathered.addmm_(pos.to(gathered.dtype), w_pos.t().to(gathered.dtype))


def run_layers(mlp: MLP, x: torch.Tensor, start: int, stop: int | None = None, ws: Workspace | None = None,
               name: str = "mlp", out_name: str | None = None) -> torch.Tensor:
    """``mlp.layers[start:stop]`` on (N, D) ``x``. In inference with a workspace, each
    Linear writes into the buffers ``name``0/1 in turn (activations then run in place;
    a product through oneDNN, which cannot write into a buffer, takes none),
    and the MLP's own last layer into ``out_name`` when given, else a fresh tensor (what
    a decoder returns must not be a buffer the next chunk overwrites)."""
    layers = list(mlp.layers)
    last = layers[-1]
    if ws is None or not reusable():
        for layer in layers[start:stop]:
            x = layer(x)
        return x
    turn = 0
    todo = layers[start:stop]
    i = 0
    while i < len(todo):
        layer = todo[i]
        i += 1
        if not isinstance(layer, nn.Linear) or (layer is last and out_name is None):
            x = layer(x)
            continue
        # A ReLU right after the product is fused into it where the product can (oneDNN).
        relu = i < len(todo) and isinstance(todo[i], nn.ReLU)
        dtype = product_dtype(x)
        x, weight = x.to(dtype), layer.weight.to(dtype)
        buf = ws.take(out_name if layer is last else f"{name}{turn}", (x.shape[0], layer.out_features), x) \
            if gemm.writes_into(x, weight) else None
        turn ^= 1
        x = gemm.linear(x, weight, None if layer.bias is None else layer.bias.to(dtype), relu=relu, out=buf)
        i += relu
    return x

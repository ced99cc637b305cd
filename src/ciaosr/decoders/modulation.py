"""LMF's latent modulations (He & Jin, CVPR 2024), shared by LM-LIIF and LM-LTE.

LMF moves the expensive part of a local implicit decoder into the LR space: a
*hypernetwork* (a plain ReLU MLP, ``hypernet.layers.*``) maps each LR pixel's latent code
(and the scale, through the cell) to

* a compressed latent code of the render MLP's width (``mod_input``), and
* a scale ``s_l`` and a shift ``t_l`` for every hidden layer ``l`` of a small *render
  MLP* (``imnet.layers.*``, ReLU), which runs per query:
  ``x_l = relu((W_l x_{l-1} + b_l) * (1 + s_l) + t_l)``, the last layer linear.

The official code lays the hypernetwork's output out per LR pixel as
``[s_0 .. s_{D-1}, t_0 .. t_{D-1}, latent...]`` (D hidden layers of width K). A query reads
the modulations of the LR pixel whose latent code it reads (nearest lookup, as the code).

Here the modulations of all LR pixels are one row-major table
``[lead, 1 + s_0, t_0, 1 + s_1, t_1, ...]`` (``lead`` the decoder's own per-pixel columns),
gathered once per query and neighbour. The table depends on the cell (the hypernetwork
sees it), so it cannot be made in ``prepare``: :class:`CellTableCache` makes it at the first
chunk of a cell and keeps it for the chunks that follow. The official code feeds LR pixel
``i`` the cell of query ``i`` (``cell[:, :h * w]``); every caller of the official code
(test and training) gives all queries of an image one cell, and here each image's table
is made from its first query's cell.
"""

from __future__ import annotations

import threading
from typing import Callable

import torch
from torch import Tensor

from ..errors import CiaosrError
from .lte import scaled_cell
from .mlp import MLP
from .sampling import area_weights, sample_nearest, shifted_coords


class CellTableCache:
    """The modulation table of the last per-image cell asked for, made once and shared
    by the chunks that follow (which may run side by side, in threads)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._table: Tensor | None = None

    def get(self, cell0: Tensor, make: Callable[[], Tensor]) -> Tensor:
        key = (tuple(cell0.shape), tuple(cell0.detach().flatten().tolist()))
        with self._lock:
            if self._key != key:
                self._table, self._key = make(), key
            return self._table


class LatentModulated:
    """What LMF's decoders share around their per-cell modulation tables (each defines
    ``_table(prep, rel_cell0)``, ``hidden_dim``, ``depth`` and ``max_train_scale``): the
    table of a cell, and what CMSR reads (:mod:`ciaosr.inference.cmsr`).

    ``query(prep, coord, cell, table_cell=None, clip=True)``: the modulations come from
    ``table_cell`` when given (CMSR renders at a lower scale with the output's
    modulations), and ``clip=False`` leaves the render cell unclipped (CMSR's table search
    does)."""

    #: CMSR's table search (the official ``update_scale2mean``): the largest mean |shift|
    #: it tries, and whether the predictions it compares include the global residual.
    cmsr_search_max = 0.5
    cmsr_search_residual = False

    def _cells(self, prep: dict, cell: Tensor, table_cell: Tensor | None = None,
               clip: bool = True) -> tuple[Tensor, Tensor]:
        """(the scaled render cell, the modulation table of ``table_cell``, else of ``cell``)."""
        h, w = prep["size"]
        limit = None if self.training else self.max_train_scale
        rel_cell = scaled_cell(cell, h, w, limit if clip else None)
        if table_cell is not None or not clip:
            rel_table = scaled_cell(cell if table_cell is None else table_cell, h, w, limit)
        else:
            rel_table = rel_cell
        return rel_cell, prep["tables"].get(rel_table[:, 0], lambda: self._table(prep, rel_table[:, 0]))

    def shift_means(self, prep: dict, cell: Tensor) -> Tensor:
        """(B, 1, H, W): per LR pixel, the mean |shift| over all the render MLP's hidden
        layers at ``cell`` (the official CMSR's ``mod_mean``)."""
        _, table = self._cells(prep, cell)
        (h, w), k, d = prep["size"], self.hidden_dim, self.depth
        shifts = table[:, table.shape[1] - 2 * d * k:].view(-1, d, 2, k)[:, :, 1]
        return shifts.abs().mean(dim=(1, 2)).view(-1, 1, h, w)


def lookup_neighbours(prep: dict, coord: Tensor, local_ensemble: bool) -> tuple[Tensor, Tensor]:
    """LIIF's neighbours of each query: the rows of the (B*H*W, ...) tables (B*Q*n,) and
    the offsets from their centres in LR pixels (B, Q, n, 2); n = 4 (the 2x2 local
    ensemble, LIIF's order) or 1 (the nearest pixel)."""
    h, w = prep["size"]
    b = coord.shape[0]
    positions = shifted_coords(coord, 1.0 / h, 1.0 / w) if local_ensemble else [coord.clamp(-1 + 1e-6, 1 - 1e-6)]
    idx = torch.stack([sample_nearest(prep["index"], c)[..., 0] for c in positions], dim=2).long()
    rel = (coord.unsqueeze(2) - prep["centres"][idx]) * torch.tensor([h, w], dtype=coord.dtype, device=coord.device)
    rows = (idx + (torch.arange(b, device=coord.device) * (h * w)).view(b, 1, 1)).reshape(-1)
    return rows, rel


def render_mlp(hidden_dim: int, depth: int, in_dim: int, out_dim: int = 3) -> MLP:
    """The render MLP of LMF's ``lmmlp``: ``depth`` ReLU layers of ``hidden_dim``, then a
    linear layer, in the official layout (``layers.{0,2,...}``)."""
    return MLP(in_dim, out_dim, (hidden_dim,) * depth)


def modulation_table(mod: Tensor, lead: Tensor, hidden_dim: int, depth: int) -> Tensor:
    """(..., P) hypernetwork output in the official layout and (..., L) leading columns
    -> the (..., L + 2 * depth * hidden_dim) table ``[lead, 1 + s_0, t_0, 1 + s_1, ...]``."""
    n = depth * hidden_dim
    scales = mod[..., :n].unflatten(-1, (depth, hidden_dim)) + 1.0
    shifts = mod[..., n:2 * n].unflatten(-1, (depth, hidden_dim))
    return torch.cat([lead, torch.stack([scales, shifts], dim=-2).flatten(-3)], dim=-1)


def modulated_hidden(imnet: MLP, x: Tensor, mods: Tensor, hidden_dim: int, depth: int) -> Tensor:
    """The render MLP up to its last hidden activation: ``x`` the first layer's
    pre-activation (N, K), ``mods`` the gathered (N, 2 * depth * K) modulation columns."""
    k = hidden_dim
    for i in range(depth):
        if i:
            x = imnet.layers[2 * i](x)
        x = torch.relu(x * mods[:, 2 * i * k:(2 * i + 1) * k] + mods[:, (2 * i + 1) * k:(2 * i + 2) * k])
    return x


def render(imnet: MLP, table: Tensor, prep: dict, coord: Tensor, extra: Tensor | None, hidden_dim: int,
           depth: int, local_ensemble: bool) -> Tensor:
    """The render MLP's prediction at (B, Q, 2) ``coord`` from a table whose leading
    ``hidden_dim`` columns are its first layer on the per-pixel code (bias included):
    the first layer's last input columns take ``[rel, extra]`` (``extra`` (B, Q, E), e.g.
    the scaled cell, or None), then the modulated layers and LIIF's area blend."""
    k = hidden_dim
    rows, rel = lookup_neighbours(prep, coord, local_ensemble)
    b, nq, n = rel.shape[:3]
    pos = rel if extra is None else torch.cat([rel, extra.unsqueeze(2).expand(-1, -1, n, -1)], dim=-1)
    looked = table.index_select(0, rows)
    w_pos = imnet.layers[0].weight[:, -pos.shape[-1]:]
    x = looked[:, :k] + pos.reshape(b * nq * n, -1).to(looked.dtype) @ w_pos.t()
    return blend_output(imnet, modulated_hidden(imnet, x, looked[:, k:], k, depth), rel)


def blend_output(imnet: MLP, x: Tensor, rel: Tensor) -> Tensor:
    """The render MLP's last hidden activations (B*Q*n, K) of the n neighbours (offsets
    ``rel``, (B, Q, n, 2)) -> (B, Q, out) predictions: with four, LIIF's area blend,
    applied before the last (linear) layer, which then runs once per query (equal up to
    float rounding, the weights summing to 1)."""
    b, nq, n = rel.shape[:3]
    if n > 1:
        weights = area_weights([rel[:, :, i] for i in range(n)]).reshape(b * nq, 1, n)
        x = torch.bmm(weights.to(x.dtype), x.view(b * nq, n, -1)).view(b * nq, -1)
    return imnet.layers[-1](x).view(b, nq, -1)


def official_lmf_args(sd: dict, spec_args: dict | None, lead: int) -> dict | None:
    """The arguments shared by LMF's decoders, from the keys (render MLP width and depth,
    hypernetwork widths) and the official spec's switches (their defaults without one);
    ``lead``: the hypernetwork outputs besides the modulations, in render-MLP widths
    (1 for LM-LIIF's latent code, 2 for LM-LTE's amplitude and frequency codes). None
    when ``sd`` has no hypernetwork."""
    if "hypernet.layers.0.weight" not in sd or "imnet.layers.0.weight" not in sd:
        return None
    args = spec_args or {}
    imnet_args = (args.get("imnet_spec") or {}).get("args") or {}
    for key in ("mod_scale", "mod_shift"):
        if not imnet_args.get(key, True):
            raise CiaosrError(f"LMF checkpoint with {key} false: not supported (the official "
                              "configurations modulate both scale and shift)")
    if not args.get("mod_input", True):
        raise CiaosrError("LMF checkpoint with mod_input false: not supported (the official "
                          "configurations render from the compressed latent code)")

    def widths(prefix):
        keys = sorted((k for k in sd if k.startswith(prefix) and k.endswith(".weight")),
                      key=lambda k: int(k.split(".")[2]))
        return [tuple(sd[k].shape) for k in keys]

    imnet, hyper = widths("imnet.layers."), widths("hypernet.layers.")
    hidden_dim, depth = imnet[0][0], len(imnet) - 1
    if hyper[-1][0] != (2 * depth + lead) * hidden_dim:
        raise CiaosrError(f"LMF checkpoint whose hypernetwork gives {hyper[-1][0]} values per pixel, not the "
                          f"{(2 * depth + lead) * hidden_dim} its render MLP ({depth} x {hidden_dim}) needs")
    return {"hidden_dim": int(hidden_dim), "depth": int(depth),
            "hyper_hidden": tuple(int(s[0]) for s in hyper[:-1]),
            "out_dim": int(imnet[-1][0]),
            "local_ensemble": bool(args.get("local_ensemble", True)),
            "cell_decode": bool(args.get("cell_decode", True))}

"""LM-CiaoSR: CiaoSR's implicit attention with latent modulations (LMF, He & Jin, CVPR
2024; official code HeZongyao/LMF, ``models/lmciaosr.py``, registered there as
``lmciaosr``).

LMF moves CiaoSR's attention into the LR space: it runs once per LR pixel, not per
query. At LR pixel p and each of its four 2x2 neighbours n (LIIF's order):

* key ``k_n``: 4C channels of p's 3x3-unfolded code (C channels each), a 2x2 sub-block
  chosen by the neighbour; value ``v_n = [k_n, non-local feature of p]`` (CiaoSR's
  cross-scale attention, :mod:`ciaosr.decoders.nonlocal_attention`);
* ``k_n * imnet_k([k_n, rel_n, cell * (H, W)])`` and ``v_n * imnet_v([v_n, rel_n, cell *
  (H, W)])``, with ``rel_n = -(vy / H, vx / W)`` (the official key offset: a 1/H^2 shift
  in coordinates, times H);
* the query ``prenet_q(unfolded code)`` (an MLP 9C -> 4C) attends over the four keys
  (softmax of the dot products over ``softmax_scale``) and sums the values;
* the hypernetwork ``hypernet_q`` maps the attended value to a scale and shift for each of
  the render MLP's D hidden layers and a compressed code of 2K channels
  (:mod:`ciaosr.decoders.modulation`, layout ``[s.., t.., code]``).

Per query, as LM-LIIF without cell decoding: the render MLP (``imnet_q``: 2K + 2 inputs,
D ReLU layers of K, RGB) maps ``[code, rel]`` of each of LIIF's four neighbours with its
modulations, blended by area; a global bilinear residual of the normalised input is added
(mean and std 0.5). The official configuration: K = 16, D = 8, every MLP one hidden layer
(``prenet_q``, ``imnet_k``, ``imnet_v``: 256; ``hypernet_q``: 288), C = 64.

Where this follows the official code's particulars (kept so official checkpoints give the
official outputs):

* the 2x2 sub-block of a key reads the unfolded code (channel ``c * 9 + 3 ky + kx``) as if
  it were laid out ``(3, 3, C)``: neighbour (vy, vx) takes channels ``a * 3C + b * C + c``
  for ``a`` in ``t, t + 1``, ``b`` in ``l, l + 1`` (``t = (vx + 1) / 2``, ``l = (vy + 1) /
  2``, vy the row offset);
* the non-local feature is computed in crops of 48 x 48 LR pixels (the last crop of a row
  or column reaching the border; each crop widened by one pixel where the map allows, the
  widening cut off after) when the map has more than 48 x 48 pixels; a map with more
  pixels but a side below 48 has no crops, and its non-local feature is zero;
* the official training forward adds no global residual while its evaluation forward does;
  here both add it (a model trained with the official code then would not match its own
  evaluation), so training here agrees with evaluation;
* the scale enters through the cell of each image's first query (the official code gives
  LR pixel ``i`` the cell of query ``i``; every official caller gives an image one cell);
  test-time cell clipping (``max_train_scale``, eval mode only) is that of LMF's
  ``test.py``, per axis as in :mod:`ciaosr.decoders.lte`.

CMSR: :mod:`ciaosr.inference.cmsr`. Not supported (refused when an official file asks for
them; no official configuration uses them): ``mod_input`` false, ``local_size`` 1, ``feat_unfold`` false and a
``multi_scale`` other than ``[2]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import CiaosrError
from ..models.registry import register_decoder
from .base import Decoder
from .mlp import MLP
from .modulation import CellTableCache, LatentModulated, modulation_table, official_lmf_args, render, render_mlp
from .nonlocal_attention import CrossScaleAttention
from .sampling import from_pixel_tables, unfold3x3

#: The four neighbours (row offset, column offset), in the official order.
NEIGHBOURS = ((-1, -1), (-1, 1), (1, -1), (1, 1))
#: The official non-local crop (LR pixels).
NON_LOCAL_CROP = 48


def key_channels(channels: int) -> list[Tensor]:
    """Per neighbour, the 4C channels of the 9C unfolded code that make its key (the
    official ``view(B, 3, 3, C, H, W)[:, t:t + 2, l:l + 2]``)."""
    out = []
    for vy, vx in NEIGHBOURS:
        t, l = (vx + 1) // 2, (vy + 1) // 2
        out.append(torch.tensor([a * 3 * channels + b * channels + c
                                 for a in (t, t + 1) for b in (l, l + 1) for c in range(channels)]))
    return out


def cropped_non_local(attention: CrossScaleAttention, feat: Tensor, crop: int = NON_LOCAL_CROP) -> Tensor:
    """The official LM-CiaoSR non-local feature: whole when the map has at most crop^2
    pixels, else in crops (see the module docstring)."""
    b, c, h, w = feat.shape
    if h * w <= crop * crop:
        return attention(feat)
    out = feat.new_zeros(b, c, h, w)
    rows, cols = h // crop, w // crop
    for i in range(rows):
        i1, i2 = i * crop, (h if i == rows - 1 else (i + 1) * crop)
        top, bottom = int(i1 >= 1), int(i2 + 1 <= h)
        for j in range(cols):
            j1, j2 = j * crop, (w if j == cols - 1 else (j + 1) * crop)
            left, right = int(j1 >= 1), int(j2 + 1 <= w)
            part = attention(feat[:, :, i1 - top:i2 + bottom, j1 - left:j2 + right])
            out[:, :, i1:i2, j1:j2] = part[:, :, top:part.shape[-2] - bottom, left:part.shape[-1] - right]
    return out


@register_decoder("lmciaosr", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), residual=True,
                  description="CiaoSR's attention with latent modulations (LMF)",
                  encoders=("edsr-baseline", "rdn", "swinir"), encoder_args={"swinir": {"out_channels": 64}})
class LMCiaoSRDecoder(LatentModulated, Decoder):
    official_prefixes = ("prenet_q.", "hypernet_q.", "imnet_q.", "imnet_k.", "imnet_v.", "cs_attn.")
    liif_name = "lmciaosr"
    not_exportable = "its per-pixel modulations depend on the cell (the hypernetwork sees it)"
    #: Pixels per block when the per-cell table is made (bounds its temporaries).
    table_block = 4096

    @classmethod
    def official_args(cls, sd: dict, spec_args: dict | None = None) -> dict | None:
        if "hypernet_q.layers.0.weight" not in sd or "prenet_q.layers.0.weight" not in sd:
            return None
        args = spec_args or {}
        for key, official in (("local_size", 2), ("feat_unfold", True), ("multi_scale", [2])):
            if args.get(key, official) != official:
                raise CiaosrError(f"LM-CiaoSR checkpoint with {key} {args[key]}: not supported (the official "
                                  f"configurations use {official})")
        renamed = {k.replace("hypernet_q.", "hypernet.", 1).replace("imnet_q.", "imnet.", 1): v
                   for k, v in sd.items() if k.startswith(("hypernet_q.", "imnet_q."))}
        lmf_args = {"imnet_spec": args.get("imnet_q"), "mod_input": args.get("mod_input", True)}
        out = official_lmf_args(renamed, lmf_args, lead=2)

        def hidden(prefix):
            return tuple(int(sd[f"{prefix}.layers.{i}.weight"].shape[0]) for i in range(0, 100, 2)
                         if f"{prefix}.layers.{i + 2}.weight" in sd)

        return {"hidden_dim": out["hidden_dim"], "depth": out["depth"], "hyper_hidden": out["hyper_hidden"],
                "out_dim": out["out_dim"], "prenet_hidden": hidden("prenet_q"), "key_hidden": hidden("imnet_k"),
                "value_hidden": hidden("imnet_v"), "non_local": "cs_attn.down.weight" in sd,
                "softmax_scale": float(args.get("softmax_scale", 1))}

    def __init__(self, in_dim: int, hidden_dim: int = 16, depth: int = 8, hyper_hidden: Sequence[int] = (288,),
                 out_dim: int = 3, prenet_hidden: Sequence[int] = (256,), key_hidden: Sequence[int] = (256,),
                 value_hidden: Sequence[int] = (256,), non_local: bool = True, softmax_scale: float = 1.0,
                 max_train_scale: float | None = 4.0):
        super().__init__(in_dim)
        self.hidden_dim, self.depth = hidden_dim, depth
        self.non_local, self.softmax_scale, self.max_train_scale = non_local, softmax_scale, max_train_scale
        key_dim = 4 * in_dim
        value_dim = key_dim + (in_dim if non_local else 0)
        self.prenet_q = MLP(9 * in_dim, key_dim, tuple(prenet_hidden))
        self.imnet_k = MLP(key_dim + 4, key_dim, tuple(key_hidden))
        self.imnet_v = MLP(value_dim + 4, value_dim, tuple(value_hidden))
        self.hypernet_q = MLP(value_dim, (2 * depth + 2) * hidden_dim, tuple(hyper_hidden))
        self.imnet_q = render_mlp(hidden_dim, depth, 2 * hidden_dim + 2, out_dim)
        if non_local:
            self.cs_attn = CrossScaleAttention(in_dim, tile=None)
        for i, idx in enumerate(key_channels(in_dim)):
            self.register_buffer(f"key_index{i}", idx, persistent=False)

    def prepare_bytes(self, pixels: int) -> int:
        # unfolded code, non-local feature, query and its hidden layer, the table, and the
        # per-block temporaries of ``_table``
        c = self.in_dim
        per_pixel = 15 * c + self.prenet_q.layers[0].out_features + 2 * self.hypernet_q.out_dim
        return 4 * pixels * per_pixel + 4 * self.table_block * 24 * (self.imnet_v.out_dim + 256)

    def prepare(self, feat: Tensor) -> dict:
        """The unfolded codes, non-local features and attention queries, (B, H*W, .) each."""
        b, c, h, w = feat.shape
        unfolded = unfold3x3(feat)
        tables = {"unfolded": unfolded.flatten(2).transpose(1, 2)}
        tables["query"] = self.prenet_q(tables["unfolded"])
        if self.non_local:
            tables["non_local"] = cropped_non_local(self.cs_attn, feat).flatten(2).transpose(1, 2)
        return {**from_pixel_tables(tables, (h, w)), "tables": CellTableCache()}

    def _offsets(self, prep: dict) -> list[Tensor]:
        """Per neighbour, the (H*W, 2) ``rel`` of the official code (computed as it does)."""
        h, w = prep["size"]
        out = []
        for vy, vx in NEIGHBOURS:
            key = prep["centres"].clone()
            key[:, 0] += vy * (2 / h / 2) / h
            key[:, 1] += vx * (2 / w / 2) / w
            out.append((prep["centres"] - key) * torch.tensor([h, w], dtype=key.dtype, device=key.device))
        return out

    def _attend(self, unfolded: Tensor, non_local: Tensor | None, query: Tensor, rels: list[Tensor],
                rel_cell: Tensor) -> Tensor:
        """(N, .) rows of one image -> the attended values (N, value_dim)."""
        logits, values = [], []
        for i, rel in enumerate(rels):
            key = unfolded.index_select(1, getattr(self, f"key_index{i}"))
            value = key if non_local is None else torch.cat([key, non_local], dim=-1)
            pos = torch.cat([rel, rel_cell.to(rel.dtype).expand(rel.shape[0], -1)], dim=-1)
            weighted_key = key * self.imnet_k(torch.cat([key, pos], dim=-1))
            values.append(value * self.imnet_v(torch.cat([value, pos], dim=-1)))
            logits.append((query * weighted_key).sum(-1))
        attn = torch.softmax(torch.stack(logits, dim=-1) / self.softmax_scale, dim=-1)  # (N, 4)
        return torch.einsum("nk,knd->nd", attn, torch.stack(values))

    def _table(self, prep: dict, rel_cell0: Tensor) -> Tensor:
        """(B*H*W, K + 2DK): the render MLP's first layer on the compressed code, bias
        included, then the modulations; ``rel_cell0`` (B, 2) each image's scaled cell."""
        (h, w), n = prep["size"], self.table_block
        rels = self._offsets(prep)
        k, d = self.hidden_dim, self.depth
        w0 = self.imnet_q.layers[0]
        parts = []
        for b in range(rel_cell0.shape[0]):
            for p0 in range(0, h * w, n):
                rows = slice(b * h * w + p0, b * h * w + min(p0 + n, h * w))
                attended = self._attend(prep["unfolded"][rows], prep["non_local"][rows] if self.non_local else None,
                                        prep["query"][rows], [r[p0:p0 + n] for r in rels], rel_cell0[b:b + 1])
                mod = self.hypernet_q(attended)
                parts.append(modulation_table(mod, F.linear(mod[..., 2 * d * k:], w0.weight[:, :2 * k], w0.bias),
                                              k, d))
        return torch.cat(parts)

    def query(self, prep: dict, coord: Tensor, cell: Tensor, table_cell: Tensor | None = None,
              clip: bool = True) -> Tensor:
        _, table = self._cells(prep, cell, table_cell, clip)  # the render MLP does not see the cell
        return render(self.imnet_q, table, prep, coord, None, self.hidden_dim, self.depth, True)

"""CLIT: the Cascaded Local Implicit Transformer decoder (Chen et al., CVPR 2023), as the
official code (jaroslaw1007/CLIT, ``models/clit.py``, registered there as ``clit``; its
``test.py`` and ``datasets/cascaded_wrappers.py`` drive the cascade) computes it.

The encoder's features go through one 3x3 convolution to ``dim`` channels (``conv_ch``):
the stage-0 map. A stage ``i`` has its own 3x3 query, key and value convolutions
(``conv_qs.i``, ``conv_ks.i``, ``conv_vs.i``) on its map and its own MLP (``imnets.i``,
GELU); a query's stage output is that MLP on the local attention's window of weighted
values (:mod:`ciaosr.decoders.clit_attention`) and the cell times the map's size.

The cascade: the scale ``s`` (per axis, output size over input size) is split as the
official test wrapper's ``sample_system_scale`` splits it with ``scale_base`` 4: ``s``
itself up to 4, else 4 and the rest split again (x6 -> 4, 1.5; x18 -> 4, 4, 1.125). Stage
``i > 0`` runs on the stage-0 map resampled (bilinear, zero padding) to the grid of the
first ``i`` factors, ``round(n * prod)`` pixels per axis; every stage is queried at the
output coordinates with the output's cell. The stage outputs accumulate as
``y_i = out_i + 0.75 y_{i-1}``; the model adds the bilinear residual of the normalised
input to the last (``residual=True``), which is the prediction. The official test script
does not clip the cell above the training scales (the line is commented out), nor does
this decoder. A scale needing more stages than the model has is refused in one line (the
official code fails with an index error).

Asymmetric scales (the official wrapper makes square ones only): each axis is split on
its own, the number of stages is the larger count, and an axis with fewer factors stays
at its output size in the later grids.

The later stages' maps depend on the output size, so they are made at the first chunk
of a cell and kept for the chunks that follow (:class:`ciaosr.decoders.modulation.CellTableCache`);
a batch whose images have different cells (training) runs image by image.
:meth:`CLITDecoder.cascade` takes the stage grids explicitly: the official training
forward draws each stage's factor at random (the wrapper's ``scale_min``/``scale_max``
lists) instead of splitting the scale.

Parameter names and shapes are the official ones, so the decoder part of an official
``{'model': {'name': 'clit', ...}}`` checkpoint loads directly. Not supported (refused
when an official file asks for them; no official configuration uses them):
``local_attn`` false, positional encodings other than ``sinusoid``, and unequal
``imnet_num`` and ``conv_num``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import CiaosrError
from ..geometry import make_coord
from ..models.registry import register_decoder
from .base import Decoder
from .clit_attention import SinusoidPositionBias, attend, sample_bilinear, window
from .mlp import MLP
from .modulation import CellTableCache
from .sampling import from_pixel_tables


def cascade_scales(scale: float, base: float) -> list[float]:
    """The official ``sample_system_scale``: the factors of the stages, ``base`` each but
    the last (the rest, up to ``base``). A factor within 1e-5 of ``base`` counts as
    ``base`` (scales read from a float32 cell)."""
    out = []
    while scale > base * (1 + 1e-5):
        out.append(base)
        scale /= base
    return out + [scale]


@register_decoder("clit", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), residual=True,
                  description="cascaded local implicit transformer", encoders=("edsr-baseline", "rdn", "swinir"),
                  encoder_args={"swinir": {"out_channels": 64}})
class CLITDecoder(Decoder):
    """``dim`` (official ``base_dim``), ``heads`` (``head``), ``radius`` (``r``), ``stages``
    (``imnet_num`` = ``conv_num``), ``mlp_hidden`` and ``act`` (``imnet_spec``),
    ``cell_decode`` (``is_cell``), ``pos_bias`` / ``pos_scale`` / ``pos_dims`` (``pb_spec``:
    sinusoid, ``posenc_scale``, ``enc_dims``), ``scale_base`` (the test wrapper's). The
    defaults are the official three-stage configurations' (``train_*_clit3.yaml``)."""

    official_prefixes = ("conv_ch.", "conv_vs.", "conv_qs.", "conv_ks.", "pb_encoder.", "imnets.")
    liif_name = "clit"
    not_exportable = "its later stages' feature maps depend on the output size (the cell)"
    #: A chunk's window tables are (2r + 1)^2 * dim floats per query (12,544 by default).
    max_chunk = 8192

    @classmethod
    def official_args(cls, sd: dict, spec_args: dict | None = None) -> dict | None:
        """From the keys (widths, stages, window, MLP) and the official spec (switches, the
        MLP's activation, the bias's ``posenc_scale``); without a spec, the official
        configurations' values (GELU, ``posenc_scale`` 10)."""
        if "conv_ch.weight" not in sd or "imnets.0.layers.0.weight" not in sd:
            return None
        args = spec_args or {}
        if "conv_qs.0.weight" not in sd or not args.get("local_attn", True):
            raise CiaosrError("CLIT checkpoint with local_attn false: not supported (the official "
                              "configurations use local attention)")

        def numbered(prefix):
            return sorted({int(k.split(".")[1]) for k in sd if k.startswith(prefix)})

        stages = len(numbered("imnets."))
        if len(numbered("conv_vs.")) != stages:
            raise CiaosrError(f"CLIT checkpoint with {len(numbered('conv_vs.'))} convolution sets and {stages} "
                              "MLPs: not supported (the official configurations have one of each per stage)")
        layers = sorted((k for k in sd if k.startswith("imnets.0.layers.") and k.endswith(".weight")),
                        key=lambda k: int(k.split(".")[3]))
        dim = int(sd["conv_ch.weight"].shape[0])
        cell_decode = bool(args.get("is_cell", True))
        area = (sd[layers[0]].shape[1] - (2 if cell_decode else 0)) / dim
        radius = (math.isqrt(int(area)) - 1) // 2
        if (2 * radius + 1) ** 2 != area:
            raise CiaosrError(f"CLIT checkpoint whose MLP takes {sd[layers[0]].shape[1]} inputs: not a window "
                              f"of {dim}-channel values")
        imnet_args = (args.get("imnet_spec") or {}).get("args") or {}
        out = {"dim": dim, "radius": radius, "stages": stages, "cell_decode": cell_decode,
               "mlp_hidden": tuple(int(sd[k].shape[0]) for k in layers[:-1]), "out_dim": int(sd[layers[-1]].shape[0]),
               "act": str(imnet_args.get("act", "relu" if args else "gelu")).lower(),
               "heads": int(args.get("head", 8)), "pos_bias": "pb_encoder.proj.weight" in sd}
        if out["pos_bias"]:
            pb_args = (args.get("pb_spec") or {}).get("args") or {}
            if args and pb_args.get("posenc_type") != "sinusoid":
                raise CiaosrError(f"CLIT checkpoint with posenc_type {pb_args.get('posenc_type')!r}: not supported "
                                  "(the official configurations use 'sinusoid')")
            out["heads"] = int(sd["pb_encoder.proj.weight"].shape[0])
            out["pos_dims"] = int(sd["pb_encoder.proj.weight"].shape[1])
            out["pos_scale"] = float(pb_args.get("posenc_scale", 6 if args else 10))
        return out

    def __init__(self, in_dim: int, dim: int = 256, heads: int = 8, radius: int = 3, stages: int = 3,
                 mlp_hidden: Sequence[int] = (256, 256, 256, 256), act: str = "gelu", cell_decode: bool = True,
                 pos_bias: bool = True, pos_scale: float = 10.0, pos_dims: int = 64, scale_base: float = 4.0,
                 out_dim: int = 3):
        super().__init__(in_dim)
        if dim % heads:
            raise ValueError(f"CLIT dim {dim} is not a multiple of its {heads} heads")
        if stages < 1 or radius < 0 or scale_base <= 1:
            raise ValueError("CLIT needs stages >= 1, radius >= 0 and scale_base > 1")
        self.dim, self.heads, self.radius, self.stages = dim, heads, radius, stages
        self.cell_decode, self.scale_base = cell_decode, scale_base
        self.conv_ch = nn.Conv2d(in_dim, dim, 3, padding=1)
        self.conv_vs = nn.ModuleList(nn.Conv2d(dim, dim, 3, padding=1) for _ in range(stages))
        self.conv_qs = nn.ModuleList(nn.Conv2d(dim, dim, 3, padding=1) for _ in range(stages))
        self.conv_ks = nn.ModuleList(nn.Conv2d(dim, dim, 3, padding=1) for _ in range(stages))
        self.pb_encoder = SinusoidPositionBias(heads, pos_dims, pos_scale) if pos_bias else None
        width = dim * (2 * radius + 1) ** 2 + (2 if cell_decode else 0)
        self.imnets = nn.ModuleList(MLP(width, out_dim, tuple(mlp_hidden), act) for _ in range(stages))

    def prepare_bytes(self, pixels: int) -> int:
        # the stage-0 map and its query, key and value maps, the key/value table
        return 4 * pixels * (self.in_dim + 6 * self.dim)

    def _stage(self, i: int, feat: Tensor) -> dict:
        """Stage ``i``'s maps on its (B, dim, H, W) map: the query map for bilinear samples,
        the keys and values as one (B*H*W, 2 dim) table."""
        b, _, h, w = feat.shape
        kv = torch.cat([self.conv_ks[i](feat), self.conv_vs[i](feat)], dim=1).permute(0, 2, 3, 1)
        return {**from_pixel_tables({"kv": kv.reshape(b, h * w, 2 * self.dim)}, (h, w)), "q": self.conv_qs[i](feat)}

    def prepare(self, feat: Tensor) -> dict:
        base = self.conv_ch(feat)
        return {"base": base, "stage0": self._stage(0, base), "later": CellTableCache()}

    def _resampled(self, prep: dict, i: int, size: tuple[int, int]) -> dict:
        """Stage ``i``'s maps on the stage-0 map resampled to a ``size`` grid."""
        base = prep["base"]
        grid = make_coord(size, base.device, base.dtype).view(1, *size, 2).flip(-1).expand(base.shape[0], -1, -1, -1)
        return self._stage(i, F.grid_sample(base, grid, mode="bilinear", align_corners=False))

    def stage_grids(self, size: tuple[int, int], cell0: Sequence[float]) -> list[tuple[int, int]]:
        """The grids of stages 1.. for an H x W map and an image's cell (the scale split by
        :func:`cascade_scales` per axis)."""
        scales = [2 / (c * n) for c, n in zip(cell0, size)]
        splits = [cascade_scales(s, self.scale_base) for s in scales]
        count = max(len(s) for s in splits)
        if count > self.stages:
            raise CiaosrError(f"CLIT with {self.stages} stage(s) decodes scales up to x{self.scale_base ** self.stages:g}"
                              f"; x{max(scales):.4g} needs {count}")
        return [tuple(round(n * (math.prod(split[:i + 1]) if i < len(split) else s))
                      for n, s, split in zip(size, scales, splits)) for i in range(count - 1)]

    def query(self, prep: dict, coord: Tensor, cell: Tensor) -> Tensor:
        size = prep["stage0"]["size"]
        grids = [self.stage_grids(size, c) for c in cell[:, 0].detach().double().tolist()]
        if all(g == grids[0] for g in grids):
            return self.cascade(prep, coord, cell, grids[0])
        return torch.cat([self.cascade(self._image(prep, i), coord[i:i + 1], cell[i:i + 1], g)
                          for i, g in enumerate(grids)])

    def _image(self, prep: dict, i: int) -> dict:
        """Image ``i`` of a prepared batch."""
        stage, (h, w) = prep["stage0"], prep["stage0"]["size"]
        one = {**stage, "q": stage["q"][i:i + 1], "index": stage["index"][i:i + 1],
               "kv": stage["kv"][i * h * w:(i + 1) * h * w]}
        return {"base": prep["base"][i:i + 1], "stage0": one, "later": CellTableCache()}

    def cascade(self, prep: dict, coord: Tensor, cell: Tensor, grids: Sequence[tuple[int, int]]) -> Tensor:
        """The cascade with stage ``i + 1`` on the grid ``grids[i]``: (B, Q, out_dim), the
        accumulated stage outputs (no residual)."""
        grids = [tuple(g) for g in grids]
        if len(grids) >= self.stages:
            raise CiaosrError(f"CLIT with {self.stages} stage(s) given {len(grids) + 1}")
        key = torch.tensor([n for g in grids for n in g], dtype=torch.float64)
        later = prep["later"].get(key, lambda: [self._resampled(prep, i + 1, g) for i, g in enumerate(grids)])
        out = None
        for i, stage in enumerate([prep["stage0"], *later]):
            pred = self._stage_query(i, stage, coord, cell)
            out = pred if out is None else pred + out * 0.75
        return out

    def _stage_query(self, i: int, stage: dict, coord: Tensor, cell: Tensor) -> Tensor:
        (h, w), c = stage["size"], self.dim
        b, nq = coord.shape[:2]
        rows, inside, rel = window(stage, coord, self.radius)
        kv = stage["kv"].index_select(0, rows.reshape(-1)).view(b, nq, -1, 2 * c) * inside.unsqueeze(-1)
        bias = None if self.pb_encoder is None else self.pb_encoder(rel)
        x = attend(sample_bilinear(stage["q"], coord), kv[..., :c], kv[..., c:], self.heads, bias)
        if self.cell_decode:
            x = torch.cat([x, cell * torch.tensor([h, w], dtype=cell.dtype, device=cell.device)], dim=-1)
        return self.imnets[i](x)

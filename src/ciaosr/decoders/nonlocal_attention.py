"""CiaoSR's scale-aware cross-scale non-local attention (``cs_attn``).

For every LR pixel it gathers, from the whole map (or tile), 2x-larger patches whose
2x-downscaled versions look like its neighbourhood, and assembles them into a feature
that is concatenated to the decoder's values. The internal scale is fixed at 2, as in
the released code; the requested upscale enters the model only through the cell.

Memory grows as (H W)^2 / 4: the attention map has one row per LR pixel and one column
per 2x2 block. Inputs larger than ``tile`` (192 LR pixels, the official test setting)
are therefore processed in overlapping tiles (32 px overlap) whose outputs are averaged
uniformly where they overlap, as the official ``clip_test`` does; the search window is
then the tile, as in the paper's released code. ``tile=None`` searches the whole map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import gemm


def _conv_prelu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 1), nn.PReLU())


class CrossScaleAttention(nn.Module):
    """``channels`` -> ``channels``; parameter names as in the official checkpoints."""

    def __init__(self, channels: int, reduction: int = 2, ksize: int = 3, scale: int = 2,
                 softmax_scale: float = 10.0, tile: int | None = 192, tile_overlap: int = 32):
        super().__init__()
        if scale != 2 or ksize != 3:
            raise ValueError("the released CiaoSR uses scale=2, ksize=3; others are not implemented")
        self.tile = tile
        self.tile_overlap = tile_overlap
        # Attention-map elements computed at once (a band of query rows x all keys).
        self.band_elements = 2 ** 24
        #: Bands of an exported graph (see ``_bands``), unrolled in it: 8 bound the map of
        #: the largest tile (192) to 2^25.3 elements per band, whose scores and softmax (340
        #: MB) stay within the tiler's allowance for the eager bands (``prepare_bytes``:
        #: 12 x ``band_elements`` floats, 805 MB), so both backends plan the same tiles;
        #: each band costs the exporter seconds to trace, so not as many as
        #: ``band_elements`` would make.
        self.export_bands = 8
        self.ksize = ksize
        self.scale = scale
        self.softmax_scale = softmax_scale
        self.conv_match_1 = _conv_prelu(channels, channels // reduction)
        self.conv_match_2 = _conv_prelu(channels, channels // reduction)
        self.conv_assembly = _conv_prelu(channels, channels)
        self.down = nn.Conv2d(channels, channels, 3, stride=scale, padding=1)
        self.register_buffer("escape_NaN", torch.tensor([1e-4]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if self.tile is not None and (h > self.tile or w > self.tile):
            return self._tiled(x)
        return self._whole(x)

    @staticmethod
    def _starts(n: int, tile: int, stride: int) -> list[int]:
        return list(range(0, n - tile, stride)) + [n - tile]

    def _tiled(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        th, tw = min(self.tile, h), min(self.tile, w)
        stride = max(self.tile - self.tile_overlap, 1)
        out = torch.zeros_like(x)
        count = torch.zeros(1, 1, h, w, dtype=x.dtype, device=x.device)
        for top in self._starts(h, th, stride):
            for left in self._starts(w, tw, stride):
                out[..., top:top + th, left:left + tw] += self._whole(x[..., top:top + th, left:left + tw])
                count[..., top:top + th, left:left + tw] += 1
        return out / count

    def _whole(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        s = self.scale
        pad_h, pad_w = (-h) % s, (-w) % s
        if pad_h or pad_w or torch.compiler.is_exporting():  # a graph pads whatever the size
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        embed = self.conv_assembly(x)  # values, full resolution
        match = self.conv_match_1(x)  # queries, full resolution
        ref = self.conv_match_2(F.interpolate(x, scale_factor=1.0 / s, mode="bilinear", align_corners=False))
        out = torch.cat([self._attend(embed[i:i + 1], match[i:i + 1], ref[i:i + 1])
                         for i in range(x.shape[0])], dim=0)
        return out[..., :h, :w]

    def _bands(self, hp: int, per_row: int) -> list[tuple[int, int]]:
        """The bands of query rows ``[r0, r1)``: as many rows as ``band_elements`` allows;
        in an exported graph (no loops of a length the input decides) ``export_bands``
        bands of equal height (hp >= export_bands: none empty), whatever the size."""
        if torch.compiler.is_exporting():
            k = self.export_bands
            edges = [(i * hp + k - 1) // k for i in range(k)] + [hp]
            return list(zip(edges[:-1], edges[1:]))
        band = max(1, min(hp, self.band_elements // max(per_row, 1)))
        return [(r0, min(r0 + band, hp)) for r0 in range(0, hp, band)]

    def _attend(self, embed: torch.Tensor, match: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """One image: embed (1, C, Hp, Wp), match (1, C/2, Hp, Wp), ref (1, C/2, Hp/s, Wp/s)."""
        s, k = self.scale, self.ksize
        c = embed.shape[1]
        big = s * k  # value patch size (6)
        pad_v = (big - s) // 2  # 'same' padding at stride s (2)
        # Value patches: (C*36, L), one 6x6 patch per 2x2 block, as transposed-conv kernels.
        patches = F.unfold(embed, big, padding=pad_v, stride=s)[0]
        n_patches = patches.shape[-1]
        # Key kernels: 3x3 patches of the downscaled map, L2-normalised.
        keys = F.unfold(ref, k, padding=k // 2)  # (1, C/2*9, L)
        keys = keys[0].t().reshape(n_patches, ref.shape[1], k, k)
        norm = keys.pow(2).sum(dim=(1, 2, 3), keepdim=True).sqrt()
        keys = keys / torch.max(norm, self.escape_NaN.to(keys.dtype))
        # Correlate every full-resolution neighbourhood with every key, softmax over keys,
        # paste the attended 2x patches back (transposed conv, stride 2) and apply `down`
        # (conv 3x3, stride 2, zero padding 1). Both are linear, so they are fused: `down`
        # applied to each 6x6 value patch gives a 4x4 kernel per key, and the pair becomes
        # one stride-1 transposed convolution (2.25x fewer multiply-adds). The fused form
        # also counts the row and column just outside the pasted map, which `down` pads
        # with zeros; those border terms are subtracted below. Query rows go in bands
        # (each row's softmax is independent), so the (L, rows, Wp) map stays bounded.
        hp, wp = match.shape[-2:]
        w_down = self.down.weight
        fused_mat = patches.new_empty(c * 16, n_patches)  # the 4x4 kernels: (C*16, L)
        row_mat = patches.new_empty(c * big, n_patches)  # patch row 1: (C*6, L)
        col_mat = patches.new_empty(c * big, n_patches)  # patch column 1
        step = n_patches if torch.compiler.is_exporting() else 1024  # a graph has no loops of any length
        for k0 in range(0, n_patches, step):  # in blocks of keys: the padded patches are 2.25x larger
            blk = patches[:, k0:k0 + step].t().reshape(-1, c, big, big)
            fused_mat[:, k0:k0 + step] = F.conv2d(F.pad(blk, (1, 2, 1, 2)), w_down, stride=2).flatten(1).t()
            row_mat[:, k0:k0 + step] = blk[:, :, 1, :].flatten(1).t()
            col_mat[:, k0:k0 + step] = blk[:, :, :, 1].flatten(1).t()
        del patches
        padded = F.pad(match, (k // 2,) * 4)
        key_mat = keys.reshape(n_patches, -1)  # (L, C/2*9)
        out = match.new_zeros(1, c, hp + 3, wp + 3)  # uncropped fused output
        edge_row = edge_col = None  # the pasted map's row / column just outside `down`'s view
        col_parts = []
        for r0, r1 in self._bands(hp, n_patches * wp):
            rows = r1 - r0
            # Scores as one matrix product with the keys innermost, (rows*Wp, L), so the
            # softmax over keys runs along contiguous memory (a convolution with L output
            # channels computes the same, 2x slower, and leaves keys as the strided dim).
            neigh = F.unfold(padded[:, :, r0:r1 + k - 1], k)[0]  # (C/2*9, rows*Wp)
            scores = gemm.matmul(neigh.t(), key_mat.t()).mul_(self.softmax_scale)
            if torch.is_grad_enabled():
                attn = torch.softmax(scores, dim=-1)  # (rows*Wp, L)
            else:  # the same softmax in place: one band buffer instead of two
                attn = scores.sub_(scores.amax(dim=-1, keepdim=True)).exp_()
                attn.div_(attn.sum(dim=-1, keepdim=True))
            del scores
            # Transposed convolutions as a matrix product plus col2im (PyTorch's CPU
            # conv_transpose2d has no fast kernel for thousands of input channels).
            cols = gemm.matmul(fused_mat, attn.t())  # (C*16, rows*Wp)
            out[:, :, r0:r1 + 3] += F.fold(cols.unsqueeze(0), (rows + 3, wp + 3), 4)
            attn = attn.view(rows, wp, n_patches)
            if r0 == 0:
                edge_row = F.fold((row_mat @ attn[0].t()).unsqueeze(0), (1, 2 * wp + 4), (1, big), stride=(1, s))
            col_parts.append((r0, col_mat @ attn[:, 0].t()))
            del attn, cols  # before the next band's buffers are allocated
        edge_col = out.new_zeros(1, c, 2 * hp + 4, 1)
        for r0, part in col_parts:
            n = part.shape[1]
            edge_col[:, :, s * r0:s * r0 + s * (n - 1) + big] += F.fold(
                part.unsqueeze(0), (s * (n - 1) + big, 1), (big, 1), stride=(s, 1))
        edge_row, edge_col = edge_row[0, :, 0], edge_col[0, :, :, 0]  # (C, 2Wp+4), (C, 2Hp+4)
        out = out[:, :, 1:1 + hp, 1:1 + wp].clone()
        out[0, :, 0, :] -= F.conv1d(edge_row[None, :, 1:2 * wp + 2], w_down[:, :, 0, :], stride=2)[0]
        out[0, :, :, 0] -= F.conv1d(edge_col[None, :, 1:2 * hp + 2], w_down[:, :, :, 0], stride=2)[0]
        out[0, :, 0, 0] += w_down[:, :, 0, 0] @ edge_row[:, 1]
        return (out + self.down.bias.view(1, -1, 1, 1)) / 6.0

"""SwinIR feature trunk (Liang et al. 2021, classical-SR variant) without upsampler.

This computes what CiaoSR's ``LocalImplicitSRSWINIR.gen_feature`` computes, with the
parameter names it exposes at generator level, so the encoder part of an official
CiaoSR-SwinIR ``state_dict`` loads with ``strict=True`` once the buffers
``*.attn.relative_position_index`` and ``*.attn_mask`` are dropped (both are rebuilt
here at run time and are not saved):

1. reflect-pad bottom/right to a multiple of ``window_size``;
2. ``x = conv_first(img)`` (conv3x3 in -> embed_dim);
3. tokens = flatten(x), ``patch_embed.norm`` (LayerNorm, if ``patch_norm``);
4. residual Swin groups ``layers.{i}``: ``depths[i]`` Swin blocks (odd blocks use
   windows shifted by ``window_size // 2``), then ``layers.{i}.conv`` on the image
   layout, plus the group input;
5. ``norm`` (LayerNorm), back to (B, C, H, W), ``conv_after_body``, plus ``x``;
6. crop back to the input size.

Unlike the stand-alone SwinIR network, the CiaoSR feature path does **no** mean
subtraction or ``img_range`` scaling: the generator receives ``lr - rgb_mean`` and the
trunk uses it unchanged. ``img_range`` is accepted for config compatibility only.
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F
from torch import nn

from ciaosr.errors import CiaosrError

from ..models.registry import register_encoder

__all__ = ["SwinIR", "args_from_state_dict", "relative_position_index", "shifted_window_mask"]

_MASK_FILL = -100.0


def relative_position_index(window_size: int) -> torch.Tensor:
    """(w*w, w*w) int64 index into the (2w-1)^2-row relative position bias table.

    Token t of a window sits at (t // w, t % w). For tokens a and b the relative offset
    (dr, dc) = pos(a) - pos(b) lies in [-(w-1), w-1]^2 and maps to the table row
    ``(dr + w - 1) * (2w - 1) + (dc + w - 1)``.
    """
    w = window_size
    rows = torch.arange(w).repeat_interleave(w)  # token -> row
    cols = torch.arange(w).repeat(w)  # token -> col
    dr = rows[:, None] - rows[None, :] + (w - 1)
    dc = cols[:, None] - cols[None, :] + (w - 1)
    return dr * (2 * w - 1) + dc


def _to_windows(x: torch.Tensor, w: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * nW, w*w, C), windows in row-major order within each image."""
    b, h, wd, c = x.shape
    x = x.view(b, h // w, w, wd // w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, w * w, c)


def _from_windows(windows: torch.Tensor, w: int, h: int, wd: int) -> torch.Tensor:
    """Inverse of :func:`_to_windows`: (B * nW, w*w, C) -> (B, H, W, C)."""
    c = windows.shape[-1]
    x = windows.view(-1, h // w, wd // w, w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, wd, c)


def shifted_window_mask(height: int, width: int, window_size: int, shift: int) -> torch.Tensor:
    """(nW, w*w, w*w) additive mask for shifted-window attention on a height x width map.

    After the cyclic shift by ``-shift`` each axis splits into three regions: the part
    that was never wrapped ``[0, n - w)``, the last window's original part
    ``[n - w, n - shift)`` and the wrapped-around strip ``[n - shift, n)``. Tokens of a
    window may attend to each other only when they come from the same (row region,
    column region) pair; other pairs get -100.
    """
    w = window_size

    def region(n: int) -> torch.Tensor:
        idx = torch.arange(n)
        return (idx >= n - w).long() + (idx >= n - shift).long()

    label = region(height)[:, None] * 3 + region(width)[None, :]  # (H, W)
    win = _to_windows(label[None, :, :, None].float(), w).squeeze(-1)  # (nW, w*w)
    differs = win[:, None, :] != win[:, :, None]
    return torch.zeros(differs.shape).masked_fill(differs, _MASK_FILL)


class _DropPath(nn.Module):
    """Stochastic depth per sample; the identity in eval mode or with rate 0."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = float(rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        mask = x.new_empty(shape).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"rate={self.rate}"


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, drop: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(F.gelu(self.fc1(x)))
        return self.drop(self.fc2(x))


class _WindowAttention(nn.Module):
    """Multi-head self-attention inside w x w windows with a relative position bias."""

    def __init__(
        self,
        dim: int,
        window_size: int,
        num_heads: int,
        qkv_bias: bool,
        qk_scale: float | None,
        attn_drop: float,
        proj_drop: float,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1) ** 2, num_heads)
        )
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer(
            "relative_position_index", relative_position_index(window_size), persistent=False
        )
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """x: (B*nW, N, C); mask: (nW, N, N) additive, or None."""
        bw, n, c = x.shape
        heads = self.num_heads
        qkv = self.qkv(x).reshape(bw, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = q @ k.transpose(-2, -1)  # (B*nW, heads, N, N)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        attn = attn + bias.view(n, n, heads).permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(bw // nw, nw, heads, n, n) + mask[None, :, None]
            attn = attn.view(bw, heads, n, n)
        attn = self.attn_drop(attn.softmax(dim=-1))
        x = (attn @ v).transpose(1, 2).reshape(bw, n, c)
        return self.proj_drop(self.proj(x))


class _SwinBlock(nn.Module):
    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: int,
        shift: int,
        mlp_ratio: float,
        qkv_bias: bool,
        qk_scale: float | None,
        drop: float,
        attn_drop: float,
        drop_path: float,
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = _WindowAttention(
            dim, window_size, num_heads, qkv_bias, qk_scale, attn_drop, drop
        )
        self.drop_path = _DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = _Mlp(dim, int(dim * mlp_ratio), drop)

    def forward(
        self, x: torch.Tensor, size: tuple[int, int], mask: torch.Tensor | None
    ) -> torch.Tensor:
        """x: (B, H*W, C) tokens; ``mask`` is used by shifted blocks only."""
        h, w = size
        b, _, c = x.shape
        y = self.norm1(x).view(b, h, w, c)
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        y = self.attn(_to_windows(y, self.window_size), mask if self.shift else None)
        y = _from_windows(y, self.window_size, h, w)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + self.drop_path(y.reshape(b, h * w, c))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class _BlockGroup(nn.Module):
    """Holds ``blocks`` so that keys read ``residual_group.blocks.{j}``."""

    def __init__(self, blocks: list[_SwinBlock]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x, size, mask):
        for block in self.blocks:
            x = block(x, size, mask)
        return x


def _resi_conv(dim: int, kind: str) -> nn.Module:
    if kind == "1conv":
        return nn.Conv2d(dim, dim, 3, padding=1)
    if kind == "3conv":
        return nn.Sequential(
            nn.Conv2d(dim, dim // 4, 3, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(dim // 4, dim // 4, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(dim // 4, dim, 3, padding=1),
        )
    raise ValueError(f"resi_connection must be '1conv' or '3conv', got {kind!r}")


class _RSTB(nn.Module):
    """Residual Swin Transformer block: Swin blocks, a conv on the image layout, residual."""

    def __init__(self, blocks: list[_SwinBlock], dim: int, resi_connection: str) -> None:
        super().__init__()
        self.residual_group = _BlockGroup(blocks)
        self.conv = _resi_conv(dim, resi_connection)

    def forward(self, x, size, mask):
        b, _, c = x.shape
        y = self.residual_group(x, size, mask)
        y = y.transpose(1, 2).reshape(b, c, size[0], size[1])
        return self.conv(y).flatten(2).transpose(1, 2) + x


class _PatchEmbed(nn.Module):
    """Only carries the optional LayerNorm, so its key reads ``patch_embed.norm``."""

    def __init__(self, dim: int, use_norm: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim) if use_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(2).transpose(1, 2)
        return self.norm(x) if self.norm is not None else x


def _reflect_pad_bottom_right(x: torch.Tensor, pad_h: int, pad_w: int) -> torch.Tensor:
    """Reflect-pad bottom/right.

    Equal to one ``F.pad(x, (0, pad_w, 0, pad_h), 'reflect')`` whenever the pads are
    smaller than the sizes (always the case for inputs of at least ``window_size``
    pixels). Tiny inputs, where a single reflection is not defined, are padded by
    repeated reflections, and a size-1 axis by replication.
    """
    if torch.compiler.is_exporting():  # a graph pads whatever the size (inputs of at least a window)
        return F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
    if pad_h < x.shape[-2] and pad_w < x.shape[-1]:
        return F.pad(x, (0, pad_w, 0, pad_h), mode="reflect") if pad_h or pad_w else x
    for axis, pad in ((-2, pad_h), (-1, pad_w)):
        while pad > 0:
            n = x.shape[axis]
            step = pad if n == 1 else min(pad, n - 1)
            widths = (0, 0, 0, step) if axis == -2 else (0, step, 0, 0)
            x = F.pad(x, widths, mode="replicate" if n == 1 else "reflect")
            pad -= step
    return x


@register_encoder("swinir", description="SwinIR (classical SR): 180 channels, 6x6 Swin blocks, window 8")
class SwinIR(nn.Module):
    """SwinIR trunk as used by CiaoSR; output has ``embed_dim`` channels.

    ``activation_maps``: C-channel maps per pixel alive at the trunk's peak, for the
    tiler's memory estimate (``models.memory.encode_bytes``): the token copies, qkv
    and window attention of a block hold far more than its widest layer; measured,
    a 192 x 192 LIIF encode peaked at 20.3 KB per pixel, about 28 C floats.

    Args:
        in_channels: input image channels.
        embed_dim: feature width C (180 in the official model).
        depths: Swin blocks per residual group.
        num_heads: attention heads per residual group.
        window_size: attention window (the input is padded to a multiple of it).
        mlp_ratio: MLP hidden width = ``int(embed_dim * mlp_ratio)``.
        qkv_bias: bias in the qkv projection.
        qk_scale: attention scale; ``None`` means ``head_dim ** -0.5``.
        drop_rate, attn_drop_rate: dropout rates (0 in the official model).
        drop_path_rate: stochastic depth, increasing linearly from 0 to this value over
            all blocks; only active in training mode.
        patch_norm: LayerNorm right after the first conv (``patch_embed.norm``).
        resi_connection: ``'1conv'`` or ``'3conv'`` at the end of each group and as
            ``conv_after_body``.
        img_range: accepted for config compatibility and ignored (see module doc).
        out_channels: None (CiaoSR's trunk, ``embed_dim`` channels out), or the width of
            the 3x3 convolution and LeakyReLU that the LIIF code base's SwinIR (LTE's,
            LMF's, upsampler ``'none'``) ends in, ``conv_before_upsample`` (64 there).
            That code returns the features of the input padded to a multiple of the
            window; here they are cropped back to the input's size, equal on inputs
            whose sides are multiples of the window.
    """

    def __init__(
        self,
        in_channels: int = 3,
        embed_dim: int = 180,
        depths: tuple[int, ...] = (6, 6, 6, 6, 6, 6),
        num_heads: tuple[int, ...] = (6, 6, 6, 6, 6, 6),
        window_size: int = 8,
        mlp_ratio: float = 2.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        patch_norm: bool = True,
        resi_connection: str = "1conv",
        img_range: float = 1.0,
        out_channels: int | None = None,
    ) -> None:
        super().__init__()
        depths = tuple(int(d) for d in depths)
        num_heads = tuple(int(h) for h in num_heads)
        if len(depths) != len(num_heads):
            raise ValueError(f"depths {depths} and num_heads {num_heads} differ in length")
        if window_size < 2:
            raise ValueError(f"window_size must be >= 2, got {window_size}")
        self.in_channels = in_channels
        self.embed_dim = embed_dim
        self.depths = depths
        self.num_heads = num_heads
        self.window_size = window_size
        self.shift_size = window_size // 2
        self.mlp_ratio = mlp_ratio
        self.img_range = img_range
        self.out_dim = embed_dim
        self.activation_maps = 20

        self.conv_first = nn.Conv2d(in_channels, embed_dim, 3, padding=1)
        self.patch_embed = _PatchEmbed(embed_dim, patch_norm)
        self.pos_drop = nn.Dropout(drop_rate)
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        layers = []
        start = 0
        for depth, heads in zip(depths, num_heads):
            blocks = [
                _SwinBlock(
                    embed_dim,
                    heads,
                    window_size,
                    0 if j % 2 == 0 else self.shift_size,
                    mlp_ratio,
                    qkv_bias,
                    qk_scale,
                    drop_rate,
                    attn_drop_rate,
                    rates[start + j],
                )
                for j in range(depth)
            ]
            start += depth
            layers.append(_RSTB(blocks, embed_dim, resi_connection))
        self.layers = nn.ModuleList(layers)
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = _resi_conv(embed_dim, resi_connection)
        if out_channels is not None:  # the LIIF code base's SwinIR (LTE's, LMF's): its upsampler 'none'
            self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, out_channels, 3, 1, 1),
                                                      nn.LeakyReLU(inplace=True))
            self.out_dim = out_channels

        self.apply(self._init_linear_and_norm)
        # Shifted-window mask for the last padded size seen; shared by all shifted
        # blocks, never saved.
        self.register_buffer("attn_mask", None, persistent=False)
        self._attn_mask_size: tuple[int, int] | None = None

    @staticmethod
    def _init_linear_and_norm(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def _mask_for(self, size: tuple[int, int], like: torch.Tensor) -> torch.Tensor:
        if torch.compiler.is_exporting():  # computed in the graph from the size, not cached
            return shifted_window_mask(*size, self.window_size, self.shift_size).to(like)
        mask = self.attn_mask
        if (
            mask is None
            or self._attn_mask_size != size
            or mask.device != like.device
            or mask.dtype != like.dtype
        ):
            mask = shifted_window_mask(*size, self.window_size, self.shift_size)
            mask = mask.to(device=like.device, dtype=like.dtype)
            self.attn_mask = mask
            self._attn_mask_size = size
        return mask

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) -> (B, embed_dim, H, W)."""
        h, w = img.shape[-2:]
        ws = self.window_size
        x = _reflect_pad_bottom_right(img, (-h) % ws, (-w) % ws)
        hp, wp = x.shape[-2:]
        x = self.conv_first(x)
        b, c = x.shape[:2]
        mask = self._mask_for((hp, wp), x) if any(d > 1 for d in self.depths) else None

        tokens = self.pos_drop(self.patch_embed(x))
        for layer in self.layers:
            tokens = layer(tokens, (hp, wp), mask)
        tokens = self.norm(tokens)
        body = tokens.transpose(1, 2).reshape(b, c, hp, wp)
        out = self.conv_after_body(body) + x
        if hasattr(self, "conv_before_upsample"):
            out = self.conv_before_upsample(out)
        return out[:, :, :h, :w]

    # --- official checkpoints ------------------------------------------------------
    @staticmethod
    def from_liif_keys(sd: dict) -> dict:
        """The LIIF code base's SwinIR without an upsampler's layers (conv_last, upsample);
        its ``conv_before_upsample`` is kept (``out_channels``)."""
        if "patch_embed.norm.weight" not in sd and "layers.0.residual_group.blocks.0.norm1.weight" not in sd:
            return sd
        return {k: v for k, v in sd.items() if not k.startswith(("conv_last.", "upsample."))}

    @staticmethod
    def detect(sd: dict, spec_args: dict | None = None) -> tuple[str, dict] | None:
        """("swinir", constructor args) of a trunk state dict in our layout, or None."""
        if "patch_embed.norm.weight" in sd or "layers.0.residual_group.blocks.0.norm1.weight" in sd:
            return "swinir", args_from_state_dict(sd)
        return None


_BLOCK_KEY = re.compile(r"^layers\.(\d+)\.residual_group\.blocks\.(\d+)\.attn\.qkv\.weight$")


def args_from_state_dict(sd: dict[str, torch.Tensor]) -> dict:
    """Constructor kwargs of :class:`SwinIR` from a generator-level state dict.

    ``sd`` has no prefix (keys such as ``conv_first.weight``,
    ``layers.0.residual_group.blocks.0.attn.qkv.weight``); decoder keys and the
    official buffers may be present and are ignored. Dropout and drop-path rates
    cannot be read from weights and are left at their defaults.
    """
    try:
        conv_first = sd["conv_first.weight"]
    except KeyError:
        raise CiaosrError(
            "not a SwinIR state dict: no 'conv_first.weight' key "
            "(strip any 'generator.' prefix first)"
        ) from None
    blocks: dict[int, set[int]] = {}
    for key in sd:
        m = _BLOCK_KEY.match(key)
        if m:
            blocks.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    if not blocks:
        raise CiaosrError("not a SwinIR state dict: no 'layers.<i>.residual_group' keys")
    num_layers = max(blocks) + 1
    if sorted(blocks) != list(range(num_layers)):
        raise CiaosrError(f"SwinIR state dict has gaps in its layer indices: {sorted(blocks)}")
    depths = tuple(max(blocks[i]) + 1 for i in range(num_layers))
    embed_dim = int(conv_first.shape[0])

    def block_key(i: int, suffix: str) -> str:
        return f"layers.{i}.residual_group.blocks.0.{suffix}"

    table = sd[block_key(0, "attn.relative_position_bias_table")]
    side = math.isqrt(int(table.shape[0]))  # 2w - 1
    if side * side != table.shape[0] or side % 2 == 0:
        raise CiaosrError(
            f"relative_position_bias_table has {table.shape[0]} rows, not (2w-1)^2"
        )
    num_heads = tuple(
        int(sd[block_key(i, "attn.relative_position_bias_table")].shape[1])
        for i in range(num_layers)
    )
    hidden = int(sd[block_key(0, "mlp.fc1.weight")].shape[0])
    mlp_ratio = hidden / embed_dim
    if int(embed_dim * mlp_ratio) != hidden:  # guard against float round-down
        mlp_ratio = math.nextafter(mlp_ratio, math.inf)
    if "layers.0.conv.weight" in sd:
        resi = "1conv"
    elif "layers.0.conv.0.weight" in sd:
        resi = "3conv"
    else:
        raise CiaosrError(
            "SwinIR state dict has neither 'layers.0.conv.weight' nor 'layers.0.conv.0.weight'"
        )
    return {
        "in_channels": int(conv_first.shape[1]),
        "embed_dim": embed_dim,
        "depths": depths,
        "num_heads": num_heads,
        "window_size": (side + 1) // 2,
        "mlp_ratio": mlp_ratio,
        "qkv_bias": block_key(0, "attn.qkv.bias") in sd,
        "patch_norm": "patch_embed.norm.weight" in sd,
        "resi_connection": resi,
        **({"out_channels": int(sd["conv_before_upsample.0.weight"].shape[0])}
           if "conv_before_upsample.0.weight" in sd else {}),
    }

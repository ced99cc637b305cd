"""``ciaosr.upscale``: super-resolve one image (PIL, NumPy or torch) to any size.

Colour goes through the model in memory-bounded tiles (``ciaosr.inference.tiling``).
Grey images are replicated to RGB for the model and the three output channels
averaged back, so grey stays grey. Alpha is not given to the model (trained on natural
RGB, it has no notion of masks): it is upscaled separately with bicubic
interpolation (antialiased when shrinking), clamped to [0, 1], and reattached.

Precision: ``fp32``; ``bf16`` through ``torch.autocast`` (CPU and GPU); ``fp16`` on GPUs
only: on CPU it is refused (half-precision CPU kernels are slow or missing and lose
accuracy; use bf16 there).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..devices import resolve_device
from ..errors import CiaosrError
from ..imageio import ImageData, pil_to_data, quantise
from .tiling import TilePlan, plan_tiles, tiled_upsample

#: Largest output, in pixels, made unless the caller raises the limit (``--max-pixels``):
#: 2**28 = 268 million pixels (16384 x 16384); the fp32 result alone is 3 GiB.
DEFAULT_MAX_PIXELS = 2 ** 28

PRECISIONS = ("fp32", "bf16", "fp16")


# --------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------
def _factor(v, what: str) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise CiaosrError(f"{what} must be a number, got {v!r}") from None
    if not math.isfinite(f) or f <= 0:
        raise CiaosrError(f"{what} must be a positive finite number, got {v}")
    return f


def output_size(in_size: tuple[int, int], scale=None, size=None,
                max_pixels: int | None = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(width, height) of the output for an input (width, height).

    ``scale``: one factor, or (width factor, height factor); ``size``: (width, height).
    Exactly one of the two. Each axis is ``round(input * factor)`` (halves to even).
    """
    if (scale is None) == (size is None):
        raise CiaosrError("give exactly one of scale and size")
    w_in, h_in = in_size
    if size is not None:
        try:
            w, h = size
        except (TypeError, ValueError):
            raise CiaosrError(f"size must be (width, height), got {size!r}") from None
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (w, h)):
            raise CiaosrError(f"size must be whole pixels, got {size!r}")
        w, h = int(w), int(h)
    else:
        if isinstance(scale, Sequence) and not isinstance(scale, str):
            if len(scale) != 2:
                raise CiaosrError(f"scale must be one factor or (width factor, height factor), got {scale!r}")
            sx, sy = _factor(scale[0], "scale"), _factor(scale[1], "scale")
        else:
            sx = sy = _factor(scale, "scale")
        w, h = round(w_in * sx), round(h_in * sy)
    if w < 1 or h < 1:
        raise CiaosrError(f"output size {w}x{h} is less than 1 pixel")
    if max_pixels is not None and w * h > max_pixels:
        raise CiaosrError(f"output {w}x{h} has {w * h:,} pixels, over the limit of {max_pixels:,} "
                          f"(raise it with --max-pixels / max_pixels)")
    return w, h


def precision_context(device: torch.device, precision: str):
    """The autocast context for ``precision`` on ``device`` (a null context for fp32)."""
    if precision not in PRECISIONS:
        raise CiaosrError(f"precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "fp16" and device.type == "cpu":
        raise CiaosrError("fp16 is not supported on CPU (slow and inaccurate there): use bf16 or fp32")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def get_model(model=None, device: torch.device | str = "cpu"):
    """A model in eval mode on ``device``: None (the default model), a name or file, or
    a model object (moved to ``device``)."""
    if isinstance(model, torch.nn.Module):
        return model.to(device).eval()
    from ..checkpoints.loader import load_model

    return load_model(model, device=device)


# --------------------------------------------------------------------------------------
# The core: ImageData -> ImageData
# --------------------------------------------------------------------------------------
def resize_alpha(alpha: torch.Tensor, size_hw: tuple[int, int]) -> torch.Tensor:
    """(B, 1, H, W) alpha -> (B, 1, h, w): bicubic, antialiased when shrinking, in [0, 1]."""
    shrink = size_hw[0] < alpha.shape[-2] or size_hw[1] < alpha.shape[-1]
    out = F.interpolate(alpha.float(), size=size_hw, mode="bicubic", align_corners=False, antialias=shrink)
    return out.clamp_(0, 1)


def upscale_tensor(colour: torch.Tensor, size_hw: tuple[int, int], model, *, device: torch.device,
                   precision: str = "fp32", tile: int | None = None, plan: TilePlan | None = None,
                   progress: bool | None = False) -> torch.Tensor:
    """(B, 1 or 3, H, W) float in [0, 1] on the CPU -> (B, same, h, w) fp32 on the CPU."""
    grey = colour.shape[1] == 1
    rgb = colour.expand(-1, 3, -1, -1) if grey else colour
    if plan is None:
        try:
            plan = plan_tiles(model, device, tile)
        except ValueError as exc:
            raise CiaosrError(str(exc)) from None
    with precision_context(device, precision):
        out = tiled_upsample(model, rgb.float().to(device), size_hw, plan=plan, progress=progress)
    out = out.float().cpu()
    return out.mean(dim=1, keepdim=True) if grey else out


def upscale_data(data: ImageData, size_wh: tuple[int, int], model, *, device: torch.device,
                 precision: str = "fp32", tile: int | None = None, progress: bool | None = False) -> ImageData:
    """One image (``ImageData``) -> the upscaled ``ImageData`` at ``size_wh``."""
    size_hw = (size_wh[1], size_wh[0])
    colour = torch.from_numpy(np.ascontiguousarray(data.pixels)).permute(2, 0, 1).unsqueeze(0)
    out = upscale_tensor(colour, size_hw, model, device=device, precision=precision, tile=tile,
                         progress=progress)
    pixels = out[0].permute(1, 2, 0).contiguous().numpy()
    alpha = None
    if data.alpha is not None:
        a = torch.from_numpy(np.ascontiguousarray(data.alpha))[None, None]
        alpha = resize_alpha(a, size_hw)[0, 0].numpy()
    return ImageData(pixels, alpha, data.bit_depth)


# --------------------------------------------------------------------------------------
# The public API: any image kind in, the same kind out
# --------------------------------------------------------------------------------------
def _array_to_float(arr: np.ndarray, what: str) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    if np.issubdtype(arr.dtype, np.floating):
        out = arr.astype(np.float32)
        if not np.isfinite(out).all():
            raise CiaosrError(f"{what} contains NaN or infinite values")
        return np.clip(out, 0.0, 1.0)
    raise CiaosrError(f"{what}: unsupported dtype {arr.dtype} (use uint8, uint16 or float in [0, 1])")


def _from_float(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype == np.uint8:
        return quantise(x, 8)
    if dtype == np.uint16:
        return quantise(x, 16)
    return np.clip(x, 0.0, 1.0).astype(dtype)


def _channels_to_data(arr: np.ndarray, what: str) -> ImageData:
    """(H, W, C) float, C = 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA -> ImageData."""
    c = arr.shape[-1]
    if c not in (1, 2, 3, 4):
        raise CiaosrError(f"{what}: expected 1 to 4 channels (grey, grey+alpha, RGB, RGBA), got {c}")
    if c in (2, 4):
        return ImageData(np.ascontiguousarray(arr[..., :c - 1]), np.ascontiguousarray(arr[..., c - 1]))
    return ImageData(np.ascontiguousarray(arr))


def _data_to_channels(data: ImageData) -> np.ndarray:
    if data.alpha is None:
        return data.pixels
    return np.concatenate([data.pixels, data.alpha[..., None]], axis=-1)


def _pil_out(data: ImageData, mode: str) -> Image.Image:
    """The upscaled result in the input's mode where Pillow has one: L, LA, RGB, RGBA,
    I;16 (16-bit grey), I and F keep their mode; other modes come back as RGB(A)."""
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return Image.fromarray(quantise(data.pixels[..., 0], 16))  # uint16 -> I;16
    if mode == "I":
        return Image.fromarray(quantise(data.pixels[..., 0], 16).astype(np.int32))  # -> I
    if mode == "F":
        return Image.fromarray(np.clip(data.pixels[..., 0], 0, 1).astype(np.float32))  # -> F
    arr = quantise(_data_to_channels(data), 8)
    out_mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[arr.shape[-1]]
    return Image.fromarray(arr[..., 0] if out_mode == "L" else arr)  # uint8: mode by shape


def upscale(image, scale=None, size=None, model=None, tile: int | None = None, device: str = "cpu",
            precision: str = "fp32", max_pixels: int | None = DEFAULT_MAX_PIXELS, progress: bool = False):
    """Super-resolve ``image`` to ``scale`` or ``size``, returning the same kind.

    ``image``: a PIL image; a NumPy array (H, W) or (H, W, C) of uint8, uint16 or float
    in [0, 1]; or a torch tensor (C, H, W) or (B, C, H, W), float in [0, 1] (or uint8).
    C is 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA).
    ``scale``: a factor, or (width factor, height factor). ``size``: (width, height).
    Give exactly one; each output axis is ``round(input * factor)``.
    ``model``: None (the default model), a model name, a checkpoint path, or a model.
    ``tile``: LR tile size (None: chosen from free memory). ``device``: 'cpu', 'cuda',
    'cuda:N', 'mps' or 'auto'. ``precision``: 'fp32', 'bf16' or 'fp16' (GPU only).
    The output is a new object of the input's kind (PIL mode, dtype, layout, device).
    """
    dev = resolve_device(device)
    precision_context(dev, precision)  # validate before any work

    if isinstance(image, Image.Image):
        mode = image.mode
        data = pil_to_data(image)
        wh = output_size(data.size, scale, size, max_pixels)
        net = get_model(model, dev)
        out = upscale_data(data, wh, net, device=dev, precision=precision, tile=tile, progress=progress)
        return _pil_out(out, mode)

    if isinstance(image, np.ndarray):
        if image.ndim not in (2, 3):
            raise CiaosrError(f"a NumPy image must be (H, W) or (H, W, C), got shape {image.shape}")
        arr = _array_to_float(image, "image")
        data = _channels_to_data(arr[..., None] if image.ndim == 2 else arr, "image")
        wh = output_size(data.size, scale, size, max_pixels)
        net = get_model(model, dev)
        out = _data_to_channels(upscale_data(data, wh, net, device=dev, precision=precision, tile=tile,
                                             progress=progress))
        out = out[..., 0] if image.ndim == 2 else out
        return _from_float(out, image.dtype)

    if isinstance(image, torch.Tensor):
        if image.ndim not in (3, 4):
            raise CiaosrError(f"a tensor image must be (C, H, W) or (B, C, H, W), got shape {tuple(image.shape)}")
        batch = image if image.ndim == 4 else image.unsqueeze(0)
        if batch.dtype == torch.uint8:
            x = batch.float() / 255.0
        elif batch.is_floating_point():
            x = batch.float()
            if not torch.isfinite(x).all():
                raise CiaosrError("image contains NaN or infinite values")
            x = x.clamp(0, 1)
        else:
            raise CiaosrError(f"unsupported tensor dtype {image.dtype} (use float in [0, 1] or uint8)")
        c = x.shape[1]
        if c not in (1, 2, 3, 4):
            raise CiaosrError(f"expected 1 to 4 channels (grey, grey+alpha, RGB, RGBA), got {c}")
        x = x.detach().cpu()
        wh = output_size((x.shape[-1], x.shape[-2]), scale, size, max_pixels)
        size_hw = (wh[1], wh[0])
        net = get_model(model, dev)
        n_col = c - 1 if c in (2, 4) else c
        col = upscale_tensor(x[:, :n_col], size_hw, net, device=dev, precision=precision, tile=tile,
                             progress=progress)
        parts = [col] + ([resize_alpha(x[:, n_col:], size_hw)] if c in (2, 4) else [])
        out = torch.cat(parts, dim=1)
        if image.dtype == torch.uint8:
            out = (out * 255).round_().to(torch.uint8)
        else:
            out = out.to(image.dtype)
        out = out.to(image.device)
        return out if image.ndim == 4 else out[0]

    raise CiaosrError(f"unsupported image type {type(image).__name__} (use a PIL image, NumPy array or tensor)")


__all__ = ["upscale", "upscale_data", "upscale_tensor", "output_size", "resolve_device", "precision_context",
           "get_model", "resize_alpha", "DEFAULT_MAX_PIXELS", "PRECISIONS"]

"""``ciaosr.upscale``: super-resolve one image (PIL, NumPy or torch) to any size.

Shrinking. The model only makes axes grow (or keep their size): it upsamples the axes
that grow, each at a scale >= 1, and the axes that shrink are then resized with
antialiased bicubic (:func:`resize_bicubic`: the kernel of PIL's and MATLAB's bicubic,
widened to the new pixel size). A pure downscale (no axis grows, e.g. ``scale=0.5``) is
therefore exactly that bicubic resize, and an output of the input's size is the input
unchanged. The model goes first because it then sees the whole input: on six 192 x 192
Set14 crops made 2x narrower, ``2x0.5`` with the default model came 0.35 to 3.72 dB
closer to the crop made 2x shorter than with the resize first, and beat plain bicubic
on all six (``python benchmarks/mixed_scale_order.py``, 2026-11-29). Only when the
grown image would have more than ``MAX_GROWN_PIXELS`` pixels and more than the output
are the shrinking axes resized first, to bound memory.

Colour goes through the model in memory-bounded tiles (``ciaosr.inference.tiling``).
Grey images (also RGB ones whose three channels are equal) are replicated to RGB for
the model and the three output channels averaged back, so grey stays grey. Alpha is
not given to the model (trained on natural RGB, it has no notion of masks): it is
resized with the same bicubic, clamped to [0, 1], and reattached.

Precision: ``fp32`` (the default); ``bf16`` through ``torch.autocast`` (CPU and GPU),
about 2.5x faster on CPUs with native bf16 for a PSNR cost below 0.01 dB, but its 8
significant bits put the model's colours on steps of 1/128 near white (two 8-bit levels;
16-bit output gains nothing), so it is opt-in; ``auto``: bf16 where the hardware computes
it natively, else fp32; ``fp16`` on GPUs only: on CPU it is refused (half-precision CPU
kernels are slow or missing and lose accuracy; use bf16 there).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..runtime import Precision, resolve_device
from ..errors import CiaosrError
from ..imageio import ImageData, from_pil, quantise, split_channels, stack_channels
from ..geometry import Resize
from ..options import BACKENDS, DEFAULT_MAX_PIXELS
from .tiling import ProgressCallback, TilePlan, plan_tiles, tiled_upsample

#: Largest image the model makes before the axes that shrink are resized (unless the
#: output itself is larger): past it they are resized first.
MAX_GROWN_PIXELS = DEFAULT_MAX_PIXELS


# --------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------
def check_backend(backend: str, device: str | torch.device = "cpu", precision: str | Precision = "fp32") -> str:
    """``backend`` if known and, for onnxruntime, the device (cpu or auto) and precision
    (fp32) it runs at; a one-line ``CiaosrError`` otherwise."""
    if backend not in BACKENDS:
        raise CiaosrError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "onnxruntime":
        if str(device) not in ("auto", "cpu"):
            raise CiaosrError(f"the onnxruntime backend runs on the CPU (device cpu or auto), not {device}")
        name = getattr(precision, "value", precision)
        if name not in ("fp32", "auto"):  # auto: fp32 here
            raise CiaosrError(f"the onnxruntime backend computes in fp32, not {name}")
    return backend


def get_model(model=None, device: torch.device | str = "cpu", backend: str = "torch"):
    """A model in eval mode on ``device``: None (the default model), a name or file, or
    a model object (moved to ``device``). ``backend="onnxruntime"``: the model's exported
    graphs run by ONNX Runtime (``ciaosr.onnx.runtime.load_onnx_model``: an ``.onnx``
    file, or any of the above exported on the fly into the cache)."""
    if check_backend(backend, device) == "onnxruntime":
        from ..onnx.runtime import load_onnx_model

        return load_onnx_model(model)
    if isinstance(model, torch.nn.Module):
        return model.to(device).eval()
    from ..checkpoints.loader import load_model

    return load_model(model, device=device)


# --------------------------------------------------------------------------------------
# The core: ImageData -> ImageData
# --------------------------------------------------------------------------------------
def resize_bicubic(x: torch.Tensor, size_hw: tuple[int, int]) -> torch.Tensor:
    """(B, C, H, W) in [0, 1] -> (B, C, h, w) fp32 in [0, 1]: bicubic with a = -0.5 (PIL's
    and MATLAB's kernel), widened along an axis that shrinks (antialiased; PIL's
    ``Image.resize(..., BICUBIC)``), each axis on its own; an axis that keeps its size is
    kept exactly."""
    if tuple(x.shape[-2:]) == tuple(size_hw):
        return x.float()
    out = F.interpolate(x.float(), size=tuple(size_hw), mode="bicubic", align_corners=False, antialias=True)
    return out.clamp_(0, 1)


def upscale_tensor(colour: torch.Tensor, size_hw: tuple[int, int], model, *, device: torch.device,
                   precision: Precision = Precision.FP32, tile: int | None = None, plan: TilePlan | None = None,
                   progress: bool | None = False, on_progress: ProgressCallback | None = None,
                   cmsr: Mapping | None = None) -> torch.Tensor:
    """(B, 1 or 3, H, W) float in [0, 1] on the CPU -> (B, same, h, w) fp32 on the CPU.

    The model makes the axes that grow, then :func:`resize_bicubic` the axes that
    shrink (first instead when the grown image would be too large, see the module's
    notes); the model is not used when no axis grows. Grey stays grey, also when stored
    as RGB with three equal channels. ``progress``: a tqdm bar over tiles;
    ``on_progress``: called with the tiler's ``Progress`` (``inference.tiling``), and
    stops the work by raising. ``cmsr``: CMSR tables (``inference.cmsr``, LMF's decoders):
    the model then renders the whole image at once, past the training range with CMSR."""
    channels = colour.shape[1]
    if channels == 3 and torch.equal(colour[:, 0], colour[:, 1]) and torch.equal(colour[:, 0], colour[:, 2]):
        colour = colour[:, :1]
    (h, w), (H, W) = size_hw, colour.shape[-2:]
    grown = (max(h, H), max(w, W))
    if grown[0] * grown[1] > max(h * w, MAX_GROWN_PIXELS):
        colour = resize_bicubic(colour, (min(h, H), min(w, W)))
        grown = (h, w)
    if grown != tuple(colour.shape[-2:]):
        colour = _model_upsample(colour, grown, model, device, precision, tile, plan, progress, on_progress, cmsr)
    colour = resize_bicubic(colour, (h, w))
    return colour.expand(-1, channels, -1, -1).contiguous() if colour.shape[1] != channels else colour


def _model_upsample(colour: torch.Tensor, size_hw: tuple[int, int], model, device: torch.device,
                    precision: Precision, tile: int | None, plan: TilePlan | None,
                    progress: bool | None, on_progress: ProgressCallback | None,
                    cmsr: Mapping | None = None) -> torch.Tensor:
    """The model's (B, 1 or 3, h, w) output; grey goes in as three equal channels and
    comes out as their mean."""
    grey = colour.shape[1] == 1
    rgb = colour.expand(-1, 3, -1, -1) if grey else colour
    if cmsr is not None:  # the whole output grid at once: CMSR interpolates across it
        from .cmsr import cmsr_upsample

        with torch.no_grad(), precision.autocast(device):
            out = cmsr_upsample(model, rgb.float().to(device), size_hw, cmsr).float().cpu()
        return out.mean(dim=1, keepdim=True) if grey else out
    if plan is None:
        try:
            plan = plan_tiles(model, device, tile)
        except ValueError as exc:
            raise CiaosrError(str(exc)) from None
    with precision.autocast(device):
        out = tiled_upsample(model, rgb.float().to(device), size_hw, plan=plan, progress=progress,
                             on_progress=on_progress)
    out = out.float().cpu()
    return out.mean(dim=1, keepdim=True) if grey else out


def upscale_data(data: ImageData, size_hw: tuple[int, int], model, *, device: torch.device,
                 precision: Precision = Precision.FP32, tile: int | None = None,
                 progress: bool | None = False, on_progress: ProgressCallback | None = None,
                 cmsr: Mapping | None = None) -> ImageData:
    """One image (``ImageData``) -> the upscaled ``ImageData`` of (height, width) ``size_hw``
    (``progress``, ``on_progress``, ``cmsr``: as for :func:`upscale_tensor`)."""
    colour = torch.from_numpy(np.ascontiguousarray(data.pixels)).permute(2, 0, 1).unsqueeze(0)
    out = upscale_tensor(colour, size_hw, model, device=device, precision=precision, tile=tile,
                         progress=progress, on_progress=on_progress, cmsr=cmsr)
    pixels = out[0].permute(1, 2, 0).contiguous().numpy()
    alpha = None
    if data.alpha is not None:
        a = torch.from_numpy(np.ascontiguousarray(data.alpha))[None, None]
        alpha = resize_bicubic(a, size_hw)[0, 0].numpy()
    return ImageData(pixels, alpha, data.bit_depth, data.meta)


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


def _pil_out(data: ImageData, mode: str) -> Image.Image:
    """The upscaled result in the input's mode where Pillow has one: L, LA, RGB, RGBA,
    I;16 (16-bit grey), I and F keep their mode; other modes come back as RGB(A). Its
    ``info`` holds the carried metadata (``icc_profile``, ``exif``, ``dpi``)."""
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        out = Image.fromarray(quantise(data.pixels[..., 0], 16))  # uint16 -> I;16
    elif mode == "I":
        out = Image.fromarray(quantise(data.pixels[..., 0], 16).astype(np.int32))  # -> I
    elif mode == "F":
        out = Image.fromarray(np.clip(data.pixels[..., 0], 0, 1).astype(np.float32))  # -> F
    else:
        arr = quantise(stack_channels(data), 8)
        out_mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[arr.shape[-1]]
        out = Image.fromarray(arr[..., 0] if out_mode == "L" else arr)  # uint8: mode by shape
    out.info.update(data.meta.pil_info(data.width, data.height))
    return out


def upscale(image, scale=None, size=None, model=None, tile: int | None = None, device: str = "auto",
            precision: str | Precision = "fp32", max_pixels: int | None = DEFAULT_MAX_PIXELS, progress: bool = False,
            backend: str = "torch"):
    """Super-resolve ``image`` to ``scale`` or ``size``, returning the same kind.

    ``image``: a PIL image (turned upright by its EXIF orientation, as ``ciaosr
    upscale`` does; the result carries its ICC profile, EXIF with orientation 1 and DPI
    in ``.info``); a NumPy array (H, W) or (H, W, C) of uint8, uint16 or float in
    [0, 1]; or a torch tensor (C, H, W) or (B, C, H, W), float in [0, 1] (or uint8).
    Arrays and tensors are taken as stored and have no metadata.
    C is 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA).
    ``scale``: a factor, or (width factor, height factor). ``size``: (width, height).
    Give exactly one; each output axis is ``round(input * factor)``. Axes that shrink
    are resized with antialiased bicubic, the model makes the axes that grow.
    ``model``: None (the default model), a model name, a checkpoint path, or a model.
    ``tile``: LR tile size (None: chosen from free memory). ``device``: 'auto' (the
    default, as for ``ciaosr upscale``: CUDA, then MPS, then CPU), 'cpu', 'cuda',
    'cuda:N' or 'mps'. ``precision``: 'fp32' (default), 'auto' (bf16 where the hardware
    computes it natively, else fp32: ``runtime.Precision.for_device``), 'bf16' or 'fp16'
    (GPU only).
    ``backend``: 'torch' (default) or 'onnxruntime' (the model's exported ONNX graphs, on
    the CPU in fp32; ``model`` may then also be an exported ``.onnx`` file).
    The output is a new object of the input's kind (PIL mode, dtype, layout, device).
    """
    check_backend(backend, device, precision)  # every argument is checked once, before any work
    dev = resolve_device("cpu" if backend == "onnxruntime" else device)
    precision = Precision.FP32 if backend == "onnxruntime" else Precision.for_device(precision, dev)
    resize = Resize.of(scale, size)

    if isinstance(image, Image.Image):
        mode = image.mode
        data = from_pil(image)
        size_hw = resize.output_size((data.height, data.width), max_pixels)
        net = get_model(model, dev, backend)
        out = upscale_data(data, size_hw, net, device=dev, precision=precision, tile=tile, progress=progress)
        return _pil_out(out, mode)

    if isinstance(image, np.ndarray):
        if image.ndim not in (2, 3):
            raise CiaosrError(f"a NumPy image must be (H, W) or (H, W, C), got shape {image.shape}")
        arr = _array_to_float(image, "image")
        arr = arr[..., None] if image.ndim == 2 else arr
        if arr.shape[-1] not in (1, 2, 3, 4):
            raise CiaosrError(f"image: expected 1 to 4 channels (grey, grey+alpha, RGB, RGBA), got {arr.shape[-1]}")
        data = split_channels(arr, 8)
        size_hw = resize.output_size((data.height, data.width), max_pixels)
        net = get_model(model, dev, backend)
        out = stack_channels(upscale_data(data, size_hw, net, device=dev, precision=precision, tile=tile,
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
        size_hw = resize.output_size(tuple(x.shape[-2:]), max_pixels)
        net = get_model(model, dev, backend)
        n_col = c - 1 if c in (2, 4) else c
        col = upscale_tensor(x[:, :n_col], size_hw, net, device=dev, precision=precision, tile=tile,
                             progress=progress)
        parts = [col] + ([resize_bicubic(x[:, n_col:], size_hw)] if c in (2, 4) else [])
        out = torch.cat(parts, dim=1)
        if image.dtype == torch.uint8:
            out = (out * 255).round_().to(torch.uint8)
        else:
            out = out.to(image.dtype)
        out = out.to(image.device)
        return out if image.ndim == 4 else out[0]

    raise CiaosrError(f"unsupported image type {type(image).__name__} (use a PIL image, NumPy array or tensor)")


__all__ = ["upscale", "upscale_data", "upscale_tensor", "get_model", "check_backend", "BACKENDS", "resize_bicubic",
           "DEFAULT_MAX_PIXELS"]

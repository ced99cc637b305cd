"""LPIPS v0.1 (Zhang et al., CVPR 2018), the AlexNet and VGG16 variants, without
torchvision. Lower is more similar; 0 for identical images.

Both images in [0, 1] are mapped to [-1, 1], shifted and scaled per channel by the
reference implementation's ScalingLayer (shift -0.030, -0.088, -0.188; scale 0.458,
0.448, 0.450), run through the backbone's convolutional stack, and at five ReLU outputs
(AlexNet: relu1-relu5; VGG16: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3) the features
are unit-normalised along the channels (``x / (||x|| + 1e-10)``); the squared
differences are weighted per channel by the learned linear heads (``data/lpips_v0.1_*``,
from the ``lpips`` package, BSD-2-Clause: ``data/LICENSE-LPIPS.txt``), averaged over the
positions and summed over the five layers.

The backbones' ImageNet weights are torchvision's own files, which cannot be shipped or
downloaded here: ``alexnet-owt-7be5be79.pth`` and ``vgg16-397923af.pth``, given by path
or found in ``torch.hub.get_dir()/checkpoints/``, where torchvision itself keeps them,
and read into feature stacks numbered as torchvision's (``ciaosr.imagenet_nets``).
"""

from __future__ import annotations

import os
from functools import lru_cache
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from ..errors import CiaosrError
from ..imagenet_nets import hub_file, read_features, vgg_features
from ..options import LPIPS_NETS
from .nss import to_rgb01

__all__ = ["LPIPS", "BACKBONE_FILES", "backbone_path", "lpips"]

#: torchvision's ImageNet weight files of the backbones.
BACKBONE_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10

# (kind, arguments) of torchvision's ``features`` modules, index by index.
_ALEX = [("conv", 3, 64, 11, 4, 2), ("relu",), ("pool", 3, 2), ("conv", 64, 192, 5, 1, 2), ("relu",), ("pool", 3, 2),
         ("conv", 192, 384, 3, 1, 1), ("relu",), ("conv", 384, 256, 3, 1, 1), ("relu",),
         ("conv", 256, 256, 3, 1, 1), ("relu",)]
_ALEX_TAPS = (1, 4, 7, 9, 11)  # relu1 .. relu5
_VGG_TAPS = (3, 8, 15, 22, 29)  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3


def _module(spec) -> nn.Module:
    if spec[0] == "conv":
        _, cin, cout, k, stride, pad = spec
        return nn.Conv2d(cin, cout, k, stride=stride, padding=pad)
    if spec[0] == "relu":
        return nn.ReLU()
    return nn.MaxPool2d(spec[1], spec[2])


class _Backbone(nn.Module):
    """torchvision's ``features`` stack of AlexNet or VGG16, up to the last tapped ReLU."""

    def __init__(self, net: str):
        super().__init__()
        if net == "alex":
            self.features = nn.Sequential(*(_module(s) for s in _ALEX))
        else:
            self.features = vgg_features(16, _VGG_TAPS[-1])
        self.taps = _ALEX_TAPS if net == "alex" else _VGG_TAPS

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, m in enumerate(self.features):
            x = m(x)
            if i in self.taps:
                out.append(x)
        return out


def backbone_path(net: str, weights: str | os.PathLike | None = None) -> Path:
    """The backbone weight file: ``weights`` if given, else torchvision's file in the
    torch hub cache; a one-line ``CiaosrError`` saying what is missing and where to put
    it when there is none."""
    if net not in LPIPS_NETS:
        raise CiaosrError(f"unknown LPIPS network {net!r} (choose from {', '.join(LPIPS_NETS)})")
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise CiaosrError(f"LPIPS ({net}) backbone weights not found: {path}")
        return path
    path = hub_file(BACKBONE_FILES[net])
    folder = path.parent
    if not path.is_file():
        raise CiaosrError(
            f"LPIPS ({net}) needs torchvision's ImageNet weights {BACKBONE_FILES[net]}, which are not in "
            f"{folder}: put the file there or give its path (--lpips-weights FILE)")
    return path


class LPIPS(nn.Module):
    """LPIPS v0.1 with the ``net`` backbone; ``forward(x, y)`` takes (B, 3, H, W) in
    [0, 1] and returns (B,) distances."""

    def __init__(self, net: str = "alex", weights: str | os.PathLike | None = None):
        super().__init__()
        path = backbone_path(net, weights)
        self.net_name = net
        self.backbone = _Backbone(net)
        self.backbone.features.load_state_dict(read_features(
            path, self.backbone.features, file_name=BACKBONE_FILES[net], net="AlexNet" if net == "alex" else "VGG16",
            purpose=f"LPIPS ({net}) backbone"))
        from safetensors.torch import load as load_safetensors

        blob = resources.files("ciaosr.metrics").joinpath(f"data/lpips_v0.1_{net}.safetensors").read_bytes()
        heads = load_safetensors(blob)
        for k in range(5):
            self.register_buffer(f"lin{k}", heads[f"lin{k}"].float().view(1, -1, 1, 1))
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        self.eval().requires_grad_(False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fx = self.backbone(((2 * x - 1) - self.shift) / self.scale)
        fy = self.backbone(((2 * y - 1) - self.shift) / self.scale)
        total = 0
        for k, (a, b) in enumerate(zip(fx, fy)):
            a = a / (torch.sqrt((a * a).sum(1, keepdim=True)) + EPS)
            b = b / (torch.sqrt((b * b).sum(1, keepdim=True)) + EPS)
            total = total + ((a - b) ** 2 * getattr(self, f"lin{k}")).sum(1).mean(dim=(1, 2))
        return total


@lru_cache(maxsize=2)
def _cached(net: str, path: str, device: str) -> LPIPS:
    return LPIPS(net, path).to(device)


def lpips(img1, img2, net: str = "alex", weights: str | os.PathLike | None = None, *, device=None) -> float:
    """LPIPS distance of two images of the same size (NumPy H x W x 3 uint8, or tensors
    as the package takes them), on ``device`` (default: the first image's device)."""
    a = to_rgb01(img1, device)
    b = to_rgb01(img2, a.device)
    if a.shape != b.shape or a.shape[0] != 3:
        raise ValueError(f"LPIPS needs two RGB images of one size, got {tuple(a.shape)} and {tuple(b.shape)}")
    model = _cached(net, str(backbone_path(net, weights)), str(a.device))
    with torch.no_grad():
        return float(model(a[None].float(), b[None].float())[0].item())

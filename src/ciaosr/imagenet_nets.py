"""torchvision's ImageNet VGG feature stacks and their weight files, without torchvision.

LPIPS (``metrics.lpips``) and the perceptual loss of training (``training.vgg``) run the
convolutional part of torchvision's VGG nets with torchvision's own ImageNet weights.
The files cannot be shipped or downloaded here: they are given by path or found where
torchvision keeps them, ``torch.hub.get_dir()/checkpoints/`` (``hub_file``), and read
with ``torch.load(weights_only=True)`` into stacks numbered as torchvision's
``vgg16().features`` / ``vgg19().features`` (``vgg_features``), by their
``features.<n>.weight/bias`` keys (``read_features``; other keys are ignored).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .errors import CiaosrError

# torchvision's configurations "D" (VGG16) and "E" (VGG19): output channels of each 3x3
# conv (each followed by a ReLU), "M" a 2x2 max-pool.
VGG_CONFIGS = {
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    19: (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
}


def vgg_kinds(depth: int) -> list[str]:
    """The kind of each layer of ``vgg<depth>().features``: conv, relu or pool."""
    return [k for v in VGG_CONFIGS[depth] for k in (["pool"] if v == "M" else ["conv", "relu"])]


def vgg_features(depth: int, upto: int) -> nn.Sequential:
    """``vgg<depth>().features[:upto + 1]`` with random weights, numbered as torchvision's."""
    kinds = vgg_kinds(depth)
    if not 0 <= upto < len(kinds):
        raise ValueError(f"VGG{depth} has {len(kinds)} feature layers (0..{len(kinds) - 1}), not {upto + 1}")
    layers: list[nn.Module] = []
    channels = 3
    for v in VGG_CONFIGS[depth]:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, v, kernel_size=3, padding=1), nn.ReLU()]
            channels = v
    return nn.Sequential(*layers[:upto + 1])


def hub_file(name: str) -> Path:
    """Where torchvision keeps its downloaded weight file ``name``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def read_features(path: Path, features: nn.Module, *, file_name: str, net: str, purpose: str) -> dict:
    """The tensors of ``features`` (a stack numbered as torchvision's ``features``) from
    torchvision's weight file ``path``, checked for presence and shape; one-line
    ``CiaosrError`` otherwise. ``file_name``, ``net`` and ``purpose`` word the errors."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a pickle that is no state dict, a truncated file, ...
        raise CiaosrError(f"{path}: cannot read {purpose} weights ({type(exc).__name__})") from None
    wanted = features.state_dict()
    try:
        found = {k: state[f"features.{k}"] for k in wanted}
    except (KeyError, TypeError):
        raise CiaosrError(f"{path}: not torchvision's {file_name} (no 'features.*' weights of {net})") from None
    bad = [k for k in wanted if not isinstance(found[k], torch.Tensor) or tuple(found[k].shape) != tuple(wanted[k].shape)]
    if bad:
        k = bad[0]
        raise CiaosrError(f"{path}: features.{k} has shape {tuple(getattr(found[k], 'shape', ()))}, "
                          f"expected {tuple(wanted[k].shape)} for {purpose}")
    return {k: v.float() for k, v in found.items()}

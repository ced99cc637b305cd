"""VGG19's convolutional layers, for the perceptual loss, with torchvision's ImageNet weights.

The network is our own module laid out as torchvision's ``vgg19().features`` (the same
layer numbers, so the file ``vgg19-dcbb9e9d.pth`` that torchvision downloads loads into
it by its ``features.<n>.weight/bias`` keys; its ``classifier.*`` keys are not used;
``ciaosr.imagenet_nets``). torchvision itself is never imported. Nothing is downloaded:
the file is taken from a path given in the config (``losses.vgg_weights``, ``ciaosr
train --vgg PATH``), else from torch hub's cache,
``<torch.hub.get_dir()>/checkpoints/vgg19-dcbb9e9d.pth`` (where torchvision puts it:
``$TORCH_HOME/hub/checkpoints``).

The layers' outputs are taken before their ReLU (``features.2`` is conv1_2's output),
as mmediting's and BasicSR's perceptual losses number and read them.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import CiaosrError
from ..imagenet_nets import hub_file, read_features, vgg_features, vgg_kinds

VGG19_FILE = "vgg19-dcbb9e9d.pth"
VGG19_URL = f"https://download.pytorch.org/models/{VGG19_FILE}"
# ImageNet statistics of the inputs VGG19 was trained on (RGB in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg19_layer_count() -> int:
    """The number of layers of ``vgg19().features`` (37)."""
    return len(vgg_kinds(19))


def min_input_side(layer: int) -> int:
    """The smallest input side that still leaves one pixel at ``layer`` (2 to the number
    of max-pools up to it)."""
    return 2 ** vgg_kinds(19)[:layer + 1].count("pool")


def find_vgg_weights(path: str | None) -> Path:
    """The VGG19 weights file: ``path`` when given, else torch hub's cache; a one-line
    CiaosrError naming the file and where it was looked for when it is not there."""
    where = Path(path).expanduser() if path else hub_file(VGG19_FILE)
    if where.is_file():
        return where
    how = ("(losses.vgg_weights / --vgg)" if path else
           "(torch hub's cache; give another place with --vgg PATH or losses.vgg_weights)")
    raise CiaosrError(f"the perceptual loss needs torchvision's ImageNet VGG19 weights {VGG19_FILE}: "
                      f"not found at {where} {how}; it is downloaded from {VGG19_URL}")


class VGG19Features(nn.Module):
    """Frozen VGG19 ``features`` up to the highest requested layer; ``forward`` returns
    the requested layers' outputs (pre-activation for conv layers) as ``{n: tensor}``.

    ``input_norm``: subtract the ImageNet mean and divide by its std first (what the
    network was trained with; mmediting's ``use_input_norm``, on by default)."""

    def __init__(self, layers: list[int], weights: str | Path | None = None, *, input_norm: bool = True):
        super().__init__()
        if not layers:
            raise ValueError("no VGG layers requested")
        self.layer_ids = sorted({int(n) for n in layers})
        self.features = vgg_features(19, self.layer_ids[-1])
        if weights is not None:
            self.features.load_state_dict(read_features(Path(weights), self.features, file_name=VGG19_FILE,
                                                        net="VGG19", purpose="the perceptual loss's VGG19"))
        self.input_norm = input_norm
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "VGG19Features":
        return super().train(False)  # no layer behaves differently, but keep it in eval

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        if self.input_norm:
            x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        out = {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.layer_ids:
                out[i] = x
        return out

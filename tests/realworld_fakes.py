"""Stand-ins for the real-world tests, so that they test the training side alone.

* ``FAKE_OPS``: a degradation that is an antialiased bilinear downscale to
  ``round(H/s) x round(W/s)``, plus Gaussian noise drawn from the generator it is given,
  rounded to 8 bits (the shapes, value range, quantisation and use of the generator of
  ``ciaosr.data.degradations.degrade``, at a fraction of its cost), and an unsharp mask
  with a 3x3 box blur (``x + 0.5 (x - blur x)``, clamped);
* ``write_vgg_file``: torchvision's VGG19 state-dict layout (``features.<n>.weight/bias``
  of the 16 convs, and a ``classifier`` key to be ignored) with random weights, saved
  under the name ``vgg19-dcbb9e9d.pth``, in place of the ImageNet file that cannot be
  downloaded here.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ciaosr.data.realworld import RealWorldOps

# The conv layers of torchvision's vgg19().features (index: in, out channels), written
# out from torchvision's configuration "E" (two convs of 64, two of 128, four of 256,
# four and four of 512, a max-pool after each group), each conv followed by a ReLU.
VGG19_CONVS = {0: (3, 64), 2: (64, 64), 5: (64, 128), 7: (128, 128), 10: (128, 256), 12: (256, 256),
               14: (256, 256), 16: (256, 256), 19: (256, 512), 21: (512, 512), 23: (512, 512), 25: (512, 512),
               28: (512, 512), 30: (512, 512), 32: (512, 512), 34: (512, 512)}
VGG19_POOLS = (4, 9, 18, 27, 36)


def fake_degrade(hr: torch.Tensor, scales: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
    out = []
    for x, s in zip(hr, scales):
        h, w = x.shape[-2:]
        size = (round(h / float(s)), round(w / float(s)))
        y = F.interpolate(x[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]
        y = y + 0.02 * torch.randn(y.shape, generator=generator, device=y.device)
        out.append((y.clamp(0, 1) * 255).round() / 255)
    return out


def fake_sharpen(x: torch.Tensor) -> torch.Tensor:
    blur = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, 1)
    return (x + 0.5 * (x - blur)).clamp(0, 1)


FAKE_OPS = RealWorldOps(fake_degrade, fake_sharpen)


def write_vgg_file(folder: Path, seed: int = 0) -> Path:
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for i, (cin, cout) in VGG19_CONVS.items():
        # He-style scale, so the deep layers' outputs neither vanish nor explode
        sd[f"features.{i}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * (2.0 / (9 * cin)) ** 0.5
        sd[f"features.{i}.bias"] = torch.randn(cout, generator=g) * 0.01
    sd["classifier.0.weight"] = torch.zeros(4, 4)  # not torchvision's shape: it must be ignored
    path = Path(folder) / "vgg19-dcbb9e9d.pth"
    torch.save(sd, path)
    return path


def vgg_reference(x: torch.Tensor, sd: dict, layers) -> dict[int, torch.Tensor]:
    """The outputs of ``layers`` of torchvision's vgg19().features, computed layer by
    layer with ``F.conv2d`` / ``F.relu`` / ``F.max_pool2d`` from the state dict, after the
    ImageNet normalisation."""
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x = (x - mean) / std
    out = {}
    for i in range(max(layers) + 1):
        if i in VGG19_CONVS:
            x = F.conv2d(x, sd[f"features.{i}.weight"], sd[f"features.{i}.bias"], padding=1)
        elif i in VGG19_POOLS:
            x = F.max_pool2d(x, 2, 2)
        else:
            x = F.relu(x)
        if i in layers:
            out[i] = x
    return out

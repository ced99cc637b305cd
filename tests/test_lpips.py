"""LPIPS without torchvision: random backbone weights of torchvision's shapes and names.

Reference values, produced on 2026-11-29 in a throwaway environment under /tmp (never
part of the project): the ``lpips`` package 0.1.4 (PyPI) with torchvision 0.28.0 on the
same torch 2.13.0, ``lpips.LPIPS(net=..., version='0.1')`` with its own linear heads and
its torchvision backbone given the state dict that ``random_backbone`` below writes
(``torchvision.models.alexnet`` / ``vgg16`` loaded with it, no missing ``features.*``
key), called as ``model(x, y, normalize=True)`` on the images of ``_pair``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from ciaosr.errors import CiaosrError
from ciaosr.metrics.lpips import BACKBONE_FILES, LPIPS, lpips

# torchvision's names and shapes of the convolutions of AlexNet's and VGG16's `features`.
ALEX_CONVS = {0: (64, 3, 11), 3: (192, 64, 5), 6: (384, 192, 3), 8: (256, 384, 3), 10: (256, 256, 3)}
VGG_CONVS = {0: (64, 3), 2: (64, 64), 5: (128, 64), 7: (128, 128), 10: (256, 128), 12: (256, 256),
             14: (256, 256), 17: (512, 256), 19: (512, 512), 21: (512, 512), 24: (512, 512),
             26: (512, 512), 28: (512, 512)}

REF = {"alex": 0.006576769519597292, "vgg": 0.009165163151919842}  # lpips 0.1.4, see above


def random_backbone(net: str, path, seed: int = 0) -> None:
    """A state dict of torchvision's ``features`` names and shapes, He-scaled normal
    weights and small biases, saved with ``torch.save``."""
    g = torch.Generator().manual_seed(seed)
    convs = ALEX_CONVS if net == "alex" else {i: (o, c, 3) for i, (o, c) in VGG_CONVS.items()}
    state = {}
    for i, (cout, cin, k) in convs.items():
        state[f"features.{i}.weight"] = torch.randn(cout, cin, k, k, generator=g) * (2.0 / (cin * k * k)) ** 0.5
        state[f"features.{i}.bias"] = torch.randn(cout, generator=g) * 0.01
    torch.save(state, path)


def _pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A 64 x 64 natural-looking image (smooth random field) and a noisy copy."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 255, (8, 8, 3)).astype(np.uint8)
    img = np.array(Image.fromarray(base).resize((64, 64), Image.BICUBIC))
    noisy = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).round().astype(np.uint8)
    return img, noisy


@pytest.fixture(scope="module")
def backbones(tmp_path_factory):
    d = tmp_path_factory.mktemp("lpips")
    paths = {}
    for net in ("alex", "vgg"):
        paths[net] = d / BACKBONE_FILES[net]
        random_backbone(net, paths[net])
    return paths


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_matches_the_lpips_package(backbones, net):
    x, y = _pair()
    assert lpips(x, y, net, backbones[net]) == pytest.approx(REF[net], rel=1e-4)


def test_zero_for_identical_and_grows_with_blur_and_noise(backbones, shared):
    net = "alex"  # VGG16 is the same code with other layers and about ten times the work
    img = Image.open(shared("datasets/Set5/HR/butterfly.png")).convert("RGB").crop((64, 64, 192, 192))
    x = np.array(img)
    assert lpips(x, x, net, backbones[net]) == 0.0
    blur = [lpips(x, np.array(img.filter(ImageFilter.GaussianBlur(s))), net, backbones[net]) for s in (0.7, 1.5, 3)]
    assert 0 < blur[0] < blur[1] < blur[2]
    rng = np.random.default_rng(0)
    noise = [lpips(x, np.clip(x + rng.normal(0, s, x.shape), 0, 255).astype(np.uint8), net, backbones[net])
             for s in (3, 10, 30)]
    assert 0 < noise[0] < noise[1] < noise[2]


def test_tensor_inputs_and_batches_agree(backbones):
    x, y = _pair(1)
    tx = torch.from_numpy(x).permute(2, 0, 1)
    ty = torch.from_numpy(y).permute(2, 0, 1)
    ref = lpips(x, y, "alex", backbones["alex"])
    assert lpips(tx, ty, "alex", backbones["alex"]) == pytest.approx(ref, abs=1e-6)
    assert lpips(tx[None].float() / 255, ty.float() / 255, "alex", backbones["alex"]) == pytest.approx(ref, abs=1e-6)
    model = LPIPS("alex", backbones["alex"])
    batch = model(torch.stack([tx, tx]).float() / 255, torch.stack([ty, tx]).float() / 255)
    assert batch.shape == (2,) and batch[0].item() == pytest.approx(ref, abs=1e-6) and batch[1].item() == 0


def test_missing_backbone_weights_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    x, y = _pair()
    with pytest.raises(CiaosrError, match="alexnet-owt-7be5be79.pth.*put the file there") as exc:
        lpips(x, y)
    assert str(tmp_path / "hub" / "checkpoints") in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(CiaosrError, match="not found"):
        lpips(x, y, "vgg", tmp_path / "nope.pth")
    with pytest.raises(CiaosrError, match="unknown LPIPS network"):
        lpips(x, y, "squeeze")


def test_found_in_the_torch_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    random_backbone("alex", tmp_path / "checkpoints" / BACKBONE_FILES["alex"])
    x, y = _pair()
    assert lpips(x, y) == pytest.approx(REF["alex"], rel=1e-4)


def test_wrong_file_is_one_clear_error(tmp_path, backbones):
    bad = tmp_path / "bad.pth"
    torch.save({"something": torch.zeros(3)}, bad)
    with pytest.raises(CiaosrError, match="not torchvision's alexnet"):
        LPIPS("alex", bad)
    with pytest.raises(CiaosrError, match="not torchvision's alexnet"):
        LPIPS("alex", backbones["vgg"])
    state = torch.load(backbones["alex"], weights_only=True)
    state["features.3.weight"] = torch.zeros(192, 64, 3, 3)
    torch.save(state, tmp_path / "shape.pth")
    with pytest.raises(CiaosrError, match="features.3.weight has shape"):
        LPIPS("alex", tmp_path / "shape.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CiaosrError, match="cannot read"):
        LPIPS("vgg", tmp_path / "junk.pth")

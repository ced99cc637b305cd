"""mmediting 0.11 and the official CiaoSR code, loaded for the scripts beside this file
(in the throwaway environment of README.md): mmedit's package ``__init__`` files, which
import everything and refuse mmcv 1.7, are replaced by empty packages whose ``__path__``
is the real folder, so the official modules themselves load unmodified from their files.
"""

import importlib.util
import os
import sys
import types

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGE = os.path.join(HERE, "..", "..", "tests", "data", "official", "div2k_0004_crop.png")
MODEL_PACKAGES = ("mmedit.models", "mmedit.models.backbones", "mmedit.models.backbones.sr_backbones",
                  "mmedit.models.components", "mmedit.models.components.refiners", "mmedit.models.losses")
MODEL_MODULES = ("mmedit.models.backbones.sr_backbones.edsr", "mmedit.models.components.refiners.mlp_refiner",
                 "mmedit.models.losses.utils", "mmedit.models.losses.pixelwise_loss")
RGB_MEAN = (0.4488, 0.4371, 0.4040)  # the official CiaoSR configs' rgb_mean (rgb_std 1)


PIPELINE_MODULES = ("utils", "loading", "random_down_sampling", "normalization", "augmentation", "formating",
                    "generate_assistant")


def fake_mmedit_packages(code, extra=()):
    """Stand-ins for mmedit's package ``__init__`` files (which import everything and
    refuse mmcv 1.7): empty packages whose ``__path__`` is the real folder, so the
    modules themselves load unmodified. ``extra``: further packages, dotted. Packages
    already made are kept."""
    from mmcv.utils import Registry

    for pkg in ("mmedit", "mmedit.datasets", "mmedit.datasets.pipelines") + tuple(extra):
        if pkg in sys.modules:
            continue
        m = types.ModuleType(pkg)
        m.__path__ = [os.path.join(code, *pkg.split("."))]
        sys.modules[pkg] = m
    if "mmedit.datasets.registry" in sys.modules:
        return
    reg = types.ModuleType("mmedit.datasets.registry")
    reg.PIPELINES = Registry("pipeline")
    sys.modules["mmedit.datasets.registry"] = reg


def load_module(code, name):
    """The module ``name`` (dotted) from its file under ``code`` (once)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, os.path.join(code, *name.split(".")) + ".py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def mmedit_sample(code, seed, patch, q, image=IMAGE):
    """One training sample of ``image`` through the official CiaoSR config's
    train_pipeline, after ``np.random.seed(seed)`` (None: the global state as it is)."""
    m = {n: load_module(code, f"mmedit.datasets.pipelines.{n}") for n in PIPELINE_MODULES}
    steps = [
        m["loading"].LoadImageFromFile(io_backend="disk", key="gt", flag="color", channel_order="rgb"),
        m["random_down_sampling"].RandomDownSampling(scale_min=1, scale_max=4, patch_size=patch),
        m["normalization"].RescaleToZeroOne(keys=["lq", "gt"]),
        m["augmentation"].Flip(keys=["lq", "gt"], flip_ratio=0.5, direction="horizontal"),
        m["augmentation"].Flip(keys=["lq", "gt"], flip_ratio=0.5, direction="vertical"),
        m["augmentation"].RandomTransposeHW(keys=["lq", "gt"], transpose_ratio=0.5),
        m["formating"].ImageToTensor(keys=["lq", "gt"]),
        m["generate_assistant"].GenerateCoordinateAndCell(sample_quantity=q),
    ]
    if seed is not None:
        np.random.seed(seed)
    r = {"gt_path": image}
    for step in steps:
        r = step(r)
    return r


def ciaosr_restorer(code, mmedit_code, mid_channels=64, num_blocks=16, hidden=(256, 256, 256, 256)):
    """The official CiaoSR restorer (``mmedited.models.restorers.ciaosr.CiaoSR``) with the
    EDSR generator of configs/001_localimplicitsr_edsr_div2k_...py (its defaults), built
    from the global torch RNG as it is."""
    sys.path.insert(0, code)  # mmedited (a namespace package)
    fake_mmedit_packages(mmedit_code, extra=MODEL_PACKAGES)
    for name in MODEL_MODULES:
        load_module(mmedit_code, name)
    from mmedited.models.backbones.sr_backbones.ciaosr_net import LocalImplicitSREDSR
    from mmedited.models.restorers.ciaosr import CiaoSR

    mlp = {"type": "MLPRefiner", "in_dim": 64, "out_dim": 64, "hidden_list": list(hidden)}
    return CiaoSR(
        generator=dict(type=LocalImplicitSREDSR,
                       encoder=dict(type="EDSR", in_channels=3, out_channels=3, mid_channels=mid_channels,
                                    num_blocks=num_blocks),
                       imnet_q=dict(mlp, in_dim=4, out_dim=3), imnet_k=dict(mlp), imnet_v=dict(mlp),
                       feat_unfold=True, eval_bsize=30000),
        rgb_mean=RGB_MEAN, rgb_std=(1., 1., 1.),
        pixel_loss=dict(type="L1Loss", loss_weight=1.0, reduction="mean"))

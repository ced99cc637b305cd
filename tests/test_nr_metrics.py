"""No-reference metrics (NIQE, BRISQUE, PIQE) against independent implementations, and their
ranking of clean against degraded images.

Reference values, produced on 2026-11-29 in a throwaway environment under /tmp (never
part of the project), on the images of shared/datasets read with Pillow as RGB uint8:

* NIQE: BasicSR 1.4.2's ``calculate_niqe`` (PyPI sdist; its own MATLAB-bicubic
  ``imresize``, SciPy filtering and NumPy statistics), ``convert_to='y'`` for the Y
  channel, and for the gray channel its ``input_order='HW'`` path given
  ``round(0.298936021293775 R + 0.587043074451121 G + 0.114020904255103 B)``. Two
  changes were made to that copy: float64 throughout, its ``imresize`` too (BasicSR
  casts to float32), and MSCN coefficients with ``|I - mu| < 1e-8`` set to 0 (the rule
  of ``nss.mscn``; without it the float64 copy computes rounding noise there: Set5
  woman gray 4.4239 against 4.4079; BasicSR as published, in float32, gives 4.4079
  there and differs from these values by at most 1.3e-3, on Set14 comic gray).
  BasicSR's docstring quotes MATLAB R2021a's NIQE of its test image baboon.png (Set14's
  baboon) as 5.72957338; ours is 5.7295739.
* BRISQUE: a plain NumPy/SciPy version written from the release's ``brisque_feature.m``
  and ``brisquescore.m`` (``scipy.ndimage.correlate`` with zero borders, whole-image
  ``np.roll``, ``scipy.special.gamma``, the float64 BasicSR ``imresize`` above, the
  same zero rule, features written with ``%f``, ``svm-scale``'s formula, ``%g``) whose
  SVR is LibSVM's own ``svm_predict`` (PyPI ``libsvm-official`` 3.37.0) on the release's
  ``allmodel`` file.
* PIQE: a plain loop-per-block NumPy/SciPy version written from MATLAB's ``piqe.m``
  (``scipy.ndimage.correlate`` with the 7 x 7 ``fspecial`` Gaussian, 'nearest'
  borders, one 16 x 16 block at a time). On butterfly (256 x 256: no padding) with one
  pixel set to 255, pyiqa 0.1.16's ``piqe`` gives 27.131017 and that version 27.131108
  (pyiqa divides by the image maximum and pads differently when a side is not a
  multiple of 16, so it is compared only there).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from ciaosr.errors import CiaosrError
from ciaosr.metrics import brisque, niqe, piqe

NIQE_REF = {  # image: (Y of YCbCr, MATLAB rgb2gray)
    "Set14/HR/baboon.png": (5.729573884151671, 5.749640887400938),
    "Set5/HR/butterfly.png": (5.154849244237003, 5.142268328252839),
    "Set14/HR/comic.png": (4.138838111804835, 4.2465465648599645),
    "B100/HR/101085.png": (2.770900725695803, 2.8264901859028386),
    "Set5/HR/woman.png": (4.388975099062651, 4.407878234473175),
    "Urban100/HR/img_001.png": (4.080375226695693, 4.091254771696591),
}
BRISQUE_REF = {  # MATLAB rgb2gray
    "Set14/HR/baboon.png": 30.228753497646267,
    "Set5/HR/butterfly.png": 13.280760775895942,
    "Set14/HR/comic.png": 3.7109174113205654,
    "B100/HR/101085.png": 12.581768379498499,
    "Set5/HR/woman.png": 9.330984314789816,
    "Urban100/HR/img_001.png": -3.1993348404117796,
}
PIQE_REF = {  # MATLAB rgb2gray
    "Set14/HR/baboon.png": 51.264096822847996,
    "Set5/HR/butterfly.png": 27.131107652828145,
    "Set5/HR/woman.png": 46.47828224467392,
}


def _rgb(shared, rel):
    return np.array(Image.open(shared("datasets/" + rel)).convert("RGB"))


@pytest.mark.parametrize("rel", sorted(NIQE_REF))
def test_niqe_matches_basicsr(shared, rel):
    img = _rgb(shared, rel)
    ref_y, ref_gray = NIQE_REF[rel]
    assert niqe(img, channel="y") == pytest.approx(ref_y, abs=1e-3)
    assert niqe(img, channel="gray") == pytest.approx(ref_gray, abs=1e-3)


def test_niqe_baboon_matches_the_published_matlab_value(shared):
    assert niqe(_rgb(shared, "Set14/HR/baboon.png")) == pytest.approx(5.72957338, abs=1e-4)


@pytest.mark.parametrize("rel", sorted(BRISQUE_REF))
def test_brisque_matches_release_reference(shared, rel):
    assert brisque(_rgb(shared, rel)) == pytest.approx(BRISQUE_REF[rel], abs=1e-3)


@pytest.mark.parametrize("rel", sorted(PIQE_REF))
def test_piqe_matches_loop_reference(shared, rel):
    assert piqe(_rgb(shared, rel)) == pytest.approx(PIQE_REF[rel], abs=1e-3)


def test_inputs_numpy_tensor_uint8_and_float_agree(shared):
    img = _rgb(shared, "Set5/HR/butterfly.png")
    t8 = torch.from_numpy(img).permute(2, 0, 1)
    for f in (niqe, brisque, piqe):
        ref = f(img)
        assert f(t8) == pytest.approx(ref, abs=1e-9)
        assert f(t8[None].double() / 255) == pytest.approx(ref, abs=1e-9)
        # float32 moves a few values across a rounding boundary of the 8-bit luma
        assert f(t8[None].float() / 255) == pytest.approx(ref, abs=1e-3)


def test_niqe_crop_border_is_cropping(shared):
    img = _rgb(shared, "Set14/HR/comic.png")
    assert niqe(img, crop_border=4) == pytest.approx(niqe(img[4:-4, 4:-4]), abs=1e-12)


def test_too_small_images_are_one_clear_error():
    with pytest.raises(CiaosrError, match="at least 96x96"):
        niqe(np.zeros((95, 200, 3), np.uint8))
    with pytest.raises(CiaosrError, match="at least 16x16"):
        brisque(np.zeros((15, 200, 3), np.uint8))


def test_piqe_of_a_flat_image_is_100_and_odd_sizes_are_padded():
    assert piqe(np.full((40, 33, 3), 128, np.uint8)) == pytest.approx(100.0)
    rng = np.random.default_rng(0)
    assert 0 <= piqe(rng.integers(0, 256, (37, 50, 3), dtype=np.uint8)) <= 100


def _degraded(img: np.ndarray) -> dict[str, np.ndarray]:
    pil = Image.fromarray(img)
    noisy = np.clip(img + np.random.default_rng(0).normal(0, 20, img.shape), 0, 255).round().astype(np.uint8)
    buf = io.BytesIO()
    pil.save(buf, "JPEG", quality=10)
    return {"blur": np.array(pil.filter(ImageFilter.GaussianBlur(2))), "noise": noisy,
            "jpeg": np.array(Image.open(buf).convert("RGB"))}


@pytest.mark.parametrize("rel", ["Urban100/HR/img_001.png", "B100/HR/101085.png"])
def test_clean_ranks_better_than_blur_noise_and_jpeg(shared, rel):
    img = np.ascontiguousarray(_rgb(shared, rel)[:384, :384])
    for f in (niqe, brisque, piqe):
        clean = f(img)
        for name, bad in _degraded(img).items():
            assert f(bad) > clean, (f.__name__, name)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_gpu_equals_cpu(shared):
    img = _rgb(shared, "Set5/HR/butterfly.png")
    t = torch.from_numpy(img).permute(2, 0, 1).cuda()
    for f in (niqe, brisque, piqe):
        assert f(t) == pytest.approx(f(img), abs=1e-8)

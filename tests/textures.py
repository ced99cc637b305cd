"""Generated test images: smooth random colour with some fine detail, so that upscalers
differ from one another (a flat or pure-noise image would not tell them apart)."""

from __future__ import annotations

import numpy as np
from PIL import Image


def texture(seed: int, h: int, w: int) -> np.ndarray:
    """uint8 (h, w, 3): upscaled coarse noise plus a little fine noise."""
    g = np.random.default_rng(seed)
    base = Image.fromarray(g.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC)
    arr = np.asarray(base).astype(np.int16) + g.integers(-12, 13, (h, w, 3))
    return np.clip(arr, 0, 255).astype(np.uint8)

"""Generate ``samples/landscape.png``: a 128 x 96 synthetic scene (no text, no photo).

Sky gradient, a sun, two ranges of hills, a lake with ripples, a small house and a
striped field, drawn procedurally with NumPy at 4x and box-filtered down, so edges are
antialiased like a real downscaled picture. Deterministic; the output is released into
the public domain (CC0 1.0).

    python samples/make_sample.py            # rewrites samples/landscape.png
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

W, H, SS = 128, 96, 4  # output size and supersampling factor


def render() -> np.ndarray:
    w, h = W * SS, H * SS
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    u, v = (x + 0.5) / w, (y + 0.5) / h  # [0, 1] across and down
    img = np.zeros((h, w, 3))

    # Sky: a vertical gradient, warmer towards the horizon.
    t = np.clip(v / 0.55, 0, 1)[..., None]
    img[:] = (1 - t) * np.array([0.25, 0.45, 0.85]) + t * np.array([0.95, 0.75, 0.55])

    # Sun with a soft glow.
    d = np.hypot(u - 0.78, (v - 0.22) * h / w)
    img += (np.exp(-(d / 0.12) ** 2) * 0.25)[..., None] * np.array([1.0, 0.8, 0.4])
    img[d < 0.05] = [1.0, 0.95, 0.7]

    # Far hills (blue-grey), then near hills (green, with a texture of bumps).
    far = 0.50 - 0.06 * np.sin(7 * u + 1.0) - 0.03 * np.sin(19 * u)
    img[v > far] = [0.40, 0.48, 0.58]
    near = 0.60 - 0.05 * np.sin(4 * u + 2.5) - 0.02 * np.cos(23 * u)
    grass = (0.35 + 0.08 * np.sin(90 * u) * np.sin(70 * v))[..., None] * np.array([0.45, 0.9, 0.35])
    mask = v > near
    img[mask] = grass[mask]

    # Lake: reflected sky with horizontal ripples.
    lake = (v > 0.72) & (np.hypot((u - 0.28) / 0.26, (v - 0.84) / 0.10) < 1)
    ripple = 0.06 * np.sin(160 * v + 8 * np.sin(12 * u))
    water = np.array([0.20, 0.40, 0.70]) + ripple[..., None]
    img[lake] = water[lake]

    # Striped field on the right.
    field = (v > 0.74) & (u > 0.58)
    stripes = (np.floor((u * 30 + v * 12)) % 2 == 0)
    img[field & stripes] = [0.85, 0.70, 0.25]
    img[field & ~stripes] = [0.65, 0.50, 0.15]

    # House: walls, a triangular roof, a door and a window.
    walls = (u > 0.55) & (u < 0.70) & (v > 0.56) & (v < 0.72)
    img[walls] = [0.90, 0.88, 0.80]
    roof = (v > 0.46) & (v <= 0.56) & (np.abs(u - 0.625) < (v - 0.46) * 1.0)
    img[roof] = [0.65, 0.15, 0.12]
    img[(u > 0.60) & (u < 0.63) & (v > 0.64) & (v < 0.72)] = [0.35, 0.22, 0.12]
    img[(u > 0.655) & (u < 0.685) & (v > 0.60) & (v < 0.635)] = [0.30, 0.55, 0.85]

    img = np.clip(img, 0, 1)
    img = img.reshape(H, SS, W, SS, 3).mean(axis=(1, 3))  # box filter: antialiased edges
    return (img * 255 + 0.5).astype(np.uint8)


def main() -> None:
    out = Path(__file__).resolve().parent / "landscape.png"
    Image.fromarray(render()).save(out, optimize=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

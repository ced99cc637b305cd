"""Which metrics ``ciaosr eval`` computes, with what settings, and whether it can.

Full-reference metrics compare the output with its HR: ``psnr`` and ``ssim`` (computed
by the protocol, see ``protocol.py``) and ``lpips``. No-reference metrics score the
output alone: ``niqe``, ``brisque`` and ``piqe``; they are all a folder of real low-resolution
images without HR can be scored with (``--input``, the real-world setting).

Everything is checked when the set is made, before any model is loaded (and without
importing torch, so that the command line's parser reads ``METRICS``): unknown names,
a no-reference run asking for a full-reference metric, and LPIPS without its backbone
weights (a one-line ``CiaosrError``, unless ``skip_unavailable``, which drops the
metric and says why in ``skipped``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Sequence

from ..errors import CiaosrError

if TYPE_CHECKING:
    import torch

PROTOCOL_METRICS = ("psnr", "ssim")
FULL_REFERENCE = ("psnr", "ssim", "lpips")
NO_REFERENCE = ("niqe", "brisque", "piqe")
METRICS = FULL_REFERENCE + NO_REFERENCE

# How the no-reference metrics see an output: as the saved 8-bit image would be.
_NR_SETTINGS = {
    "niqe": {"channel": "y (MATLAB rgb2ycbcr)", "crop_border": 0, "block": 96,
             "model": "NIQE release pristine model (mu_prisparam, cov_prisparam)",
             "input": "output rounded to uint8"},
    "brisque": {"channel": "gray (MATLAB rgb2gray)", "model": "BRISQUE release SVR (allmodel, allrange)",
                "input": "output rounded to uint8"},
    "piqe": {"channel": "gray (MATLAB rgb2gray)", "block": 16, "input": "output rounded to uint8"},
}


class MetricSet:
    """The metrics of one evaluation, validated; ``settings`` goes into the JSON."""

    def __init__(self, names: Sequence[str], *, protocol: str = "liif", reference: bool = True,
                 lpips_net: str = "alex", lpips_weights: str | os.PathLike | None = None,
                 skip_unavailable: bool = False):
        names = list(dict.fromkeys(names))
        bad = [m for m in names if m not in METRICS]
        if bad or not names:
            raise CiaosrError(f"unknown metric {bad[0] if bad else '(none)'!r} (choose from {', '.join(METRICS)})")
        if not reference:
            full = [m for m in names if m in FULL_REFERENCE]
            if full:
                raise CiaosrError(f"{full[0]} needs the HR images (--data-root); a folder of images without HR "
                                  f"can be scored with {', '.join(NO_REFERENCE)}")
        self.skipped: dict[str, str] = {}
        self.lpips_path = None
        if "lpips" in names:
            from ..metrics.lpips import backbone_path

            try:
                self.lpips_path = backbone_path(lpips_net, lpips_weights)
            except CiaosrError as exc:
                if not skip_unavailable:
                    raise
                self.skipped["lpips"] = str(exc)
                names.remove("lpips")
                if not names:
                    raise CiaosrError(f"no metric left to compute: {exc}") from None
        self.names = names
        self.lpips_net = lpips_net
        self.settings = {m: self._settings(m, protocol) for m in names}

    def _settings(self, name: str, protocol: str) -> dict:
        if name in _NR_SETTINGS:
            return dict(_NR_SETTINGS[name])
        if name == "lpips":
            return {"version": "0.1", "net": self.lpips_net, "backbone_weights": self.lpips_path.name,
                    "input": "RGB output clamped to [0, 1] (as the protocol scores it), mapped to [-1, 1]",
                    "border": "shaved as for PSNR"}
        if protocol == "mmedit":
            return {"channel": "Y of the uint8 images (MATLAB rgb2ycbcr)", "border": "crop s"}
        return {"channel": "Y (LIIF luma; DIV2K: RGB)", "border": "shave ceil(s) (DIV2K: s + 6)"}

    @property
    def protocol_metrics(self) -> list[str]:
        return [m for m in self.names if m in PROTOCOL_METRICS]

    def score_extra(self, sr: torch.Tensor, hr_u8: torch.Tensor | None, border: int) -> dict[str, float]:
        """LPIPS (given the HR) and the no-reference metrics of one (3, H, W) output in
        [0, 1], on its device."""
        import torch

        from ..metrics.psnr import shave, to_uint8

        out: dict[str, float] = {}
        if "lpips" in self.names and hr_u8 is not None:
            from ..metrics.lpips import lpips

            hr = hr_u8.to(sr.device, torch.float32) / 255.0
            out["lpips"] = lpips(shave(sr.float(), border), shave(hr, border), self.lpips_net, self.lpips_path)
        nr = [m for m in self.names if m in NO_REFERENCE]
        if nr:
            from .. import metrics

            img = to_uint8(sr)
            for m in nr:
                out[m] = getattr(metrics, m)(img)
        return out

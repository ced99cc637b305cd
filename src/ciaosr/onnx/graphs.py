"""The two halves of a model as the torch modules that are exported to ONNX.

The interface is the model's own contract (``ImplicitSRModel.encode`` / ``decode``,
``decoders.base``):

* :class:`EncodeGraph`: the LR batch ``lr`` (B, 3, H, W) RGB in [0, 1] -> ``lr_norm``
  (the normalised input: its shape gives the query graph the LR size, and the models with
  a global residual sample it) and the decoder's per-image tables (``Decoder.tables``),
  each (B, ...);
* :class:`QueryGraph`: those tensors, in the same order, then ``coord`` and ``cell``
  (B, Q, 2) -> ``rgb`` (B, Q, 3), RGB in [0, 1], not clamped (``to_image`` of the
  prediction, the residual added).
"""

from __future__ import annotations

import torch
from torch import nn

from ..models.sr_model import EncodedImage, ImplicitSRModel


def table_names(model: ImplicitSRModel) -> list[str]:
    """The encode graph's outputs after ``lr_norm``: the decoder's tables, in order."""
    probe = torch.rand(1, 3, 8, 8, device=model.mean.device)
    with torch.no_grad():
        return list(model.decoder.tables(model.encode(probe).prepared))


class EncodeGraph(nn.Module):
    def __init__(self, model: ImplicitSRModel):
        super().__init__()
        self.model = model

    def forward(self, lr: torch.Tensor) -> tuple[torch.Tensor, ...]:
        enc = self.model.encode(lr)
        return (enc.lr_norm, *self.model.decoder.tables(enc.prepared).values())


class QueryGraph(nn.Module):
    def __init__(self, model: ImplicitSRModel, names: list[str]):
        super().__init__()
        self.model = model
        self.names = list(names)

    def forward(self, lr_norm: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        *tables, coord, cell = rest
        prepared = self.model.decoder.from_tables(dict(zip(self.names, tables)), tuple(lr_norm.shape[-2:]))
        pred = self.model.decode(EncodedImage(lr_norm, None, prepared), coord, cell)
        return self.model.to_image(pred)

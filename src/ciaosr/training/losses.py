"""The losses of the real-world recipe: perceptual (VGG19 features) and vanilla GAN.

(The pixel loss is L1 in the model's normalised space, as everywhere in training:
``step.py``.) As released for real-world CiaoSR (mmediting's ``PerceptualLoss`` with
``norm_img=False``, ``use_input_norm=True``, ``criterion='l1'``, ``style_weight=0``):

* perceptual = sum over layers n of ``w_n * mean|VGG_n(pred) - VGG_n(target)|``, where
  ``VGG_n`` is the pre-activation output of layer n of ``vgg19.features`` after the
  ImageNet normalisation, and pred / target are the images the model predicts in its
  normalised space (``norm_img=False``: they are not mapped from [-1, 1] to [0, 1]
  first); the target's features carry no gradient;
* vanilla GAN: binary cross-entropy on the discriminator's logits (per pixel for the
  U-Net discriminator), real label 1, fake label 0; the generator's term is weighted,
  the discriminator's is not.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .vgg import VGG19Features

# The released layer weights: conv1_2, conv2_2, conv3_4, conv4_4, conv5_4.
RELEASED_LAYER_WEIGHTS = {2: 0.1, 7: 0.1, 16: 1.0, 25: 1.0, 34: 1.0}


class PerceptualLoss(nn.Module):
    def __init__(self, layer_weights: dict[int, float], weights_file=None):
        super().__init__()
        self.layer_weights = {int(k): float(v) for k, v in layer_weights.items()}
        self.vgg = VGG19Features(list(self.layer_weights), weights_file)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(B, 3, h, w) images -> the weighted sum of the layers' mean absolute differences."""
        fp = self.vgg(pred)
        with torch.no_grad():
            ft = self.vgg(target)
        loss = pred.new_zeros((), dtype=torch.float32)
        for n, w in self.layer_weights.items():
            loss = loss + w * F.l1_loss(fp[n].float(), ft[n].float())
        return loss


def gan_loss(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """Vanilla GAN loss: mean binary cross-entropy of ``logits`` against all-``real`` labels."""
    logits = logits.float()
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)

"""Concurrent spatial and channel squeeze & excitation (scSE).

Roy, Navab, Wachinger, "Concurrent Spatial and Channel Squeeze & Excitation in Fully
Convolutional Networks", MICCAI 2018, arXiv:1803.02579.
Layout of segmentation_models_pytorch's ``SCSEModule``
(https://github.com/qubvel-org/segmentation_models.pytorch, ``base/modules.py``):
``state_dict`` keys ``cSE.1.*``, ``cSE.3.*`` (1x1 convs with bias) and ``sSE.0.*``.
"""

from __future__ import annotations

import torch
from torch import nn

from attndeploy.layers.se import check_reduction


class SCSE(nn.Module):
    """``x * cSE(x) + x * sSE(x)``.

    cSE: GAP -> 1x1 conv C -> C/r -> ReLU -> 1x1 conv C/r -> C -> sigmoid, a (N, C, 1, 1) gate.
    sSE: 1x1 conv C -> 1 -> sigmoid, a (N, 1, H, W) gate.

    Args:
        channels: C, the input (and output) channels.
        reduction: r, the cSE bottleneck ratio; must divide `channels`.

    Shapes: x (N, C, H, W) -> (N, C, H, W).
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        check_reduction(channels, reduction)
        self.channels = channels
        self.reduction = reduction
        self.cSE = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, channels // reduction, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1),
            nn.Sigmoid(),
        )
        self.sSE = nn.Sequential(nn.Conv2d(channels, 1, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) -> (N, C, H, W)."""
        return x * self.cSE(x) + x * self.sSE(x)

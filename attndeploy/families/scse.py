"""Concurrent spatial and channel squeeze & excitation (scSE).

Roy, Navab, Wachinger, "Concurrent Spatial and Channel Squeeze & Excitation in Fully
Convolutional Networks", MICCAI 2018, arXiv:1803.02579.
Layout of segmentation_models_pytorch's ``SCSEModule``
(https://github.com/qubvel-org/segmentation_models.pytorch, ``base/modules.py``):
``state_dict`` keys ``cSE.1.*``, ``cSE.3.*`` (1x1 convs with bias) and ``sSE.0.*``.

Deploy twin: `SCSEDeploy`, same ``state_dict``, export-friendly forward.

The cSE squeeze is a ``mean`` over H, W (``ReduceMean``) instead of adaptive pooling;
``x`` is factored out of the sum of the two gates; the sSE 1×1 conv to one channel is a
MatMul (see `channel_sum`).
"""

from __future__ import annotations

import torch
from torch import nn

from attndeploy.families.se import check_reduction
from attndeploy.ops.channel_sum import conv1x1_to_one_channel


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


class SCSEDeploy(SCSE):
    """`SCSE` with a reduction-based squeeze. x (N, C, H, W) -> (N, C, H, W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) -> (N, C, H, W)."""
        _, conv1, relu, conv2, gate = self.cSE
        c = gate(conv2(relu(conv1(x.mean((2, 3), keepdim=True)))))  # (N, C, 1, 1)
        conv, s_gate = self.sSE
        s = s_gate(conv1x1_to_one_channel(conv, x)).view_as(x[:, :1])  # (N, 1, H, W)
        return x * (c + s)  # (N, C, 1, 1) + (N, 1, H, W)

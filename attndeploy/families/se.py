"""Squeeze-and-Excitation (SE) block.

Hu, Shen, Sun, "Squeeze-and-Excitation Networks", CVPR 2018, arXiv:1709.01507.
Official code: https://github.com/hujie-frank/SENet (Caffe); the layout here is the widely
used PyTorch port https://github.com/moskomule/senet.pytorch (``SELayer``), so its
``state_dict`` keys are ``fc.0.weight`` and ``fc.2.weight`` (bias-free linears).

Deploy twin: `SqueezeExciteDeploy`, same ``state_dict``, export-friendly forward.

The squeeze is a ``mean`` over H, W (ONNX ``ReduceMean``) and the gate is broadcast by
indexing, so no shape value is read back from the input.
"""

from __future__ import annotations

import torch
from torch import nn

from attndeploy.errors import require, require_divisible


def check_reduction(channels: int, reduction: int) -> None:
    """Raise `UsageError` unless `channels` >= 1, `reduction` >= 1 and `reduction` divides `channels`."""
    require(channels >= 1, "channels must be positive", ">= 1", channels)
    require(reduction >= 1, "reduction must be positive", ">= 1", reduction)
    require_divisible("channels", channels, reduction, "reduction")


class SqueezeExcite(nn.Module):
    """GAP -> Linear(C, C/r) -> ReLU -> Linear(C/r, C) -> sigmoid -> ``x * w``.

    Args:
        channels: C, the input (and output) channels.
        reduction: r, the bottleneck ratio; must divide `channels`.

    Shapes: x (N, C, H, W) -> (N, C, H, W).
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        check_reduction(channels, reduction)
        self.channels = channels
        self.reduction = reduction
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(channels, channels // reduction, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(channels // reduction, channels, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) -> (N, C, H, W)."""
        b, c = x.shape[:2]
        y = self.avg_pool(x).view(b, c)  # (N, C)
        y = self.fc(y).view(b, c, 1, 1)  # (N, C, 1, 1)
        return x * y


class SqueezeExciteDeploy(SqueezeExcite):
    """`SqueezeExcite` with a shape-free forward. x (N, C, H, W) -> (N, C, H, W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) -> (N, C, H, W)."""
        w = self.fc(x.mean((2, 3)))  # (N, C)
        return x * w[:, :, None, None]

"""Efficient Channel Attention (ECA).

Wang, Wu, Zhu, Li, Zuo, Hu, "ECA-Net: Efficient Channel Attention for Deep Convolutional
Neural Networks", CVPR 2020, arXiv:1910.03151.
Official code: https://github.com/BangguWu/ECANet (``models/eca_module.py``, ``eca_layer``):
``state_dict`` key ``conv.weight`` (bias-free ``Conv1d(1, 1, k)``). The kernel size is
the paper's adaptive choice ``k = |(log2(C) + b) / gamma|_odd``.

Deploy twin: `ECADeploy`, same ``state_dict``, export-friendly forward.

The squeeze is a ``mean`` over H, W; the (N, 1, C) sequence is made by ``unsqueeze`` and
the gate broadcast by indexing, with no ``expand_as`` of the input's shape.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from attndeploy.errors import require


def eca_kernel_size(channels: int, gamma: float = 2, b: float = 1) -> int:
    """The paper's adaptive kernel: ``t = int(|(log2 C + b) / gamma|)``, made odd by +1."""
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


class ECA(nn.Module):
    """GAP -> Conv1d(1, 1, k) across the channel axis -> sigmoid -> ``x * w``.

    Args:
        channels: C, the input (and output) channels; sets the kernel size.
        gamma, b: the adaptive kernel size parameters (paper: 2 and 1).
        bias: add a bias to the Conv1d (the official layer has none; many copies do).

    Attributes:
        kernel_size: the computed odd kernel size k (3 for C=64).

    Shapes: x (N, C, H, W) -> (N, C, H, W).
    """

    def __init__(self, channels: int, gamma: float = 2, b: float = 1, bias: bool = False) -> None:
        super().__init__()
        require(channels >= 1, "channels must be positive", ">= 1", channels)
        require(gamma > 0, "gamma must be positive", "> 0", gamma)
        self.channels = channels
        self.gamma = gamma
        self.b = b
        self.bias = bias
        self.kernel_size = eca_kernel_size(channels, gamma, b)
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv1d(1, 1, kernel_size=self.kernel_size, padding=(self.kernel_size - 1) // 2, bias=bias)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) -> (N, C, H, W)."""
        y = self.avg_pool(x)  # (N, C, 1, 1)
        y = self.conv(y.squeeze(-1).transpose(-1, -2)).transpose(-1, -2).unsqueeze(-1)  # (N, 1, C) -> (N, C, 1, 1)
        y = self.sigmoid(y)
        return x * y.expand_as(x)


class ECADeploy(ECA):
    """`ECA` with a shape-free forward. x (N, C, H, W) -> (N, C, H, W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) -> (N, C, H, W)."""
        y = self.conv(x.mean((2, 3)).unsqueeze(1))  # (N, 1, C)
        return x * torch.sigmoid(y)[:, 0, :, None, None]

"""Coordinate Attention.

Hou, Zhou, Feng, "Coordinate Attention for Efficient Mobile Network Design", CVPR 2021,
arXiv:2103.02907.
Official code: https://github.com/houqb/CoordAttention (``coordatt.py``, ``CoordAtt``), with
``inp = oup = channels``: ``state_dict`` keys ``conv1.*``, ``bn1.*``, ``conv_h.*``,
``conv_w.*``. The official ``AdaptiveAvgPool2d((None, 1))`` / ``((1, None))`` pools and the
``split`` by ``x.size()`` are kept (export hazards).

Deploy twin: `CoordAttDeploy`, same ``state_dict``, export-friendly forward.

The official ``AdaptiveAvgPool2d((None, 1))`` fails the TorchScript exporter with dynamic
H, W and is baked to the sample size by the dynamo exporter; here the pools are ``mean``
over W and over H, and the split back is a slice at H, so the graph is right at every H, W.
"""

from __future__ import annotations

import torch
from torch import nn

from attndeploy.errors import require


class h_sigmoid(nn.Module):  # noqa: N801  (official name)
    """``relu6(x + 3) / 6``, elementwise."""

    def __init__(self, inplace: bool = True) -> None:
        super().__init__()
        self.inplace = inplace
        self.relu = nn.ReLU6(inplace=inplace)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(x + 3) / 6


class h_swish(nn.Module):  # noqa: N801  (official name)
    """``x * h_sigmoid(x)``, elementwise."""

    def __init__(self, inplace: bool = True) -> None:
        super().__init__()
        self.inplace = inplace
        self.sigmoid = h_sigmoid(inplace=inplace)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.sigmoid(x)


class CoordAtt(nn.Module):
    """Direction-aware pooling along H and W, a shared 1x1 conv + BN + h_swish, two gates.

    ``mip = max(8, channels // reduction)``; output ``x * a_w * a_h`` with
    a_h (N, C, H, 1) and a_w (N, C, 1, W).

    Args:
        channels: C, the input (and output) channels (official ``inp = oup``).
        reduction: r, the bottleneck ratio (32 officially).

    Shapes: x (N, C, H, W) -> (N, C, H, W).
    """

    def __init__(self, channels: int, reduction: int = 32) -> None:
        super().__init__()
        require(channels >= 1, "channels must be positive", ">= 1", channels)
        require(reduction >= 1, "reduction must be positive", ">= 1", reduction)
        self.channels = channels
        self.reduction = reduction
        self.mip = max(8, channels // reduction)
        self.pool_h = nn.AdaptiveAvgPool2d((None, 1))
        self.pool_w = nn.AdaptiveAvgPool2d((1, None))
        self.conv1 = nn.Conv2d(channels, self.mip, kernel_size=1, stride=1, padding=0)
        self.bn1 = nn.BatchNorm2d(self.mip)
        self.act = h_swish()
        self.conv_h = nn.Conv2d(self.mip, channels, kernel_size=1, stride=1, padding=0)
        self.conv_w = nn.Conv2d(self.mip, channels, kernel_size=1, stride=1, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) -> (N, C, H, W)."""
        identity = x
        n, c, h, w = x.size()
        x_h = self.pool_h(x)  # (N, C, H, 1)
        x_w = self.pool_w(x).permute(0, 1, 3, 2)  # (N, C, W, 1)
        y = self.act(self.bn1(self.conv1(torch.cat([x_h, x_w], dim=2))))  # (N, mip, H + W, 1)
        x_h, x_w = torch.split(y, [h, w], dim=2)
        x_w = x_w.permute(0, 1, 3, 2)  # (N, mip, 1, W)
        a_h = self.conv_h(x_h).sigmoid()
        a_w = self.conv_w(x_w).sigmoid()
        return identity * a_w * a_h


class CoordAttDeploy(CoordAtt):
    """`CoordAtt` with reduction-based pooling. x (N, C, H, W) -> (N, C, H, W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) -> (N, C, H, W)."""
        h = x.shape[2]
        x_h = x.mean(3, keepdim=True)  # (N, C, H, 1)
        x_w = x.mean(2, keepdim=True).transpose(2, 3)  # (N, C, W, 1)
        # BN sees H and W positions together, as in the reference (batch statistics in training).
        y = self.act(self.bn1(self.conv1(torch.cat([x_h, x_w], dim=2))))  # (N, mip, H + W, 1)
        a_h = self.conv_h(y[:, :, :h]).sigmoid()  # (N, C, H, 1)
        a_w = self.conv_w(y[:, :, h:].transpose(2, 3)).sigmoid()  # (N, C, 1, W)
        return x * a_w * a_h

"""Convolutional Block Attention Module (CBAM).

Woo, Park, Lee, Kweon, "CBAM: Convolutional Block Attention Module", ECCV 2018,
arXiv:1807.06521.
Official code: https://github.com/Jongchan/attention-module (``MODELS/cbam.py``). The
submodule names match it, so ``state_dict`` keys are ``ChannelGate.mlp.{1,3}.{weight,bias}``
and ``SpatialGate.spatial.conv.weight``, ``SpatialGate.spatial.bn.*``. The channel MLP is
shared by the avg and max descriptors and uses ``Linear`` layers with bias, as officially.
The official pools take their kernel from ``x.size()``: kept here (an export hazard).

Deploy twin: `CBAMDeploy`, same ``state_dict``, export-friendly forward.

The official pools use kernels read from ``x.size()``, which the exporters bake in; here
the descriptors are ``mean`` / ``amax`` reductions over H, W (``ReduceMean``/``ReduceMax``),
so the graph is right at every H, W.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attndeploy.errors import require
from attndeploy.families.se import check_reduction


class BasicConv(nn.Module):
    """Conv2d (no bias) -> BatchNorm2d (eps 1e-5, momentum 0.01) -> optional ReLU.

    Shapes: x (N, in_channels, H, W) -> (N, out_channels, H', W').
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, relu: bool = True) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=1e-5, momentum=0.01, affine=True)
        self.relu = nn.ReLU() if relu else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return self.relu(x) if self.relu is not None else x


class Flatten(nn.Module):
    """x (N, ...) -> (N, prod(...))."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.size(0), -1)


class ChannelGate(nn.Module):
    """``x * sigmoid(mlp(avgpool(x)) + mlp(maxpool(x)))`` with one shared MLP.

    Shapes: x (N, C, H, W) -> (N, C, H, W); the gate is (N, C, 1, 1).
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.channels = channels
        self.reduction = reduction
        self.mlp = nn.Sequential(
            Flatten(),
            nn.Linear(channels, channels // reduction),
            nn.ReLU(),
            nn.Linear(channels // reduction, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hw = (x.size(2), x.size(3))
        avg = self.mlp(F.avg_pool2d(x, hw, stride=hw))  # (N, C)
        mx = self.mlp(F.max_pool2d(x, hw, stride=hw))  # (N, C)
        return x * torch.sigmoid(avg + mx).unsqueeze(2).unsqueeze(3).expand_as(x)


class ChannelPool(nn.Module):
    """``cat([max over C, mean over C])`` (max first, as officially): (N, C, H, W) -> (N, 2, H, W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((torch.max(x, 1)[0].unsqueeze(1), torch.mean(x, 1).unsqueeze(1)), dim=1)


class SpatialGate(nn.Module):
    """``x * sigmoid(bn(conv_kxk(ChannelPool(x))))``; the gate is (N, 1, H, W)."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.compress = ChannelPool()
        self.spatial = BasicConv(2, 1, kernel_size, stride=1, padding=(kernel_size - 1) // 2, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.spatial(self.compress(x)))


class CBAM(nn.Module):
    """Channel gate, then spatial gate.

    Args:
        channels: C, the input (and output) channels.
        reduction: r, the channel MLP's bottleneck ratio; must divide `channels`.
        kernel_size: k, the odd spatial gate kernel (7 in the paper).

    Shapes: x (N, C, H, W) -> (N, C, H, W).
    """

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        check_reduction(channels, reduction)
        require(kernel_size >= 1 and kernel_size % 2 == 1, "CBAM kernel_size must be odd (same padding)",
                "an odd integer >= 1", kernel_size)
        self.channels = channels
        self.reduction = reduction
        self.kernel_size = kernel_size
        self.ChannelGate = ChannelGate(channels, reduction)
        self.SpatialGate = SpatialGate(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) -> (N, C, H, W)."""
        return self.SpatialGate(self.ChannelGate(x))


class CBAMDeploy(CBAM):
    """`CBAM` with reduction-based pooling. x (N, C, H, W) -> (N, C, H, W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) -> (N, C, H, W)."""
        mlp = self.ChannelGate.mlp
        avg = mlp(x.mean((2, 3)))  # (N, C)
        mx = mlp(x.amax((2, 3)))  # (N, C)
        x = x * torch.sigmoid(avg + mx)[:, :, None, None]
        pooled = torch.cat((x.amax(1, keepdim=True), x.mean(1, keepdim=True)), dim=1)  # (N, 2, H, W)
        return x * torch.sigmoid(self.SpatialGate.spatial(pooled))

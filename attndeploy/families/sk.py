"""Selective Kernel convolution (SKConv).

Paper: Li et al., "Selective Kernel Networks", CVPR 2019, arXiv:1903.06586.
Structure and `state_dict` layout match the widely used PyTorch port
ResearchingDexter/SKNet_pytorch (`SKConv`): `conv.{i}.{0,1}` (grouped dilated 3x3 conv
without bias, BN), `fc1.{0,1}` (1x1 conv without bias, BN), `fc2` (1x1 conv without bias).

Branch i is a 3x3 conv with dilation 1 + i (receptive field 3, 5, 7, ...). The branch
attention is a softmax ACROSS the branch axis, so the M weights of every channel sum to 1.

Deploy twin: `SelectiveKernelDeploy`, same ``state_dict``, export-friendly forward.

GAP is a `mean` over (H, W); the branch logits are split with `unflatten`, so no size is
read from the input and N, H, W stay dynamic in both exporters.
"""

from __future__ import annotations

import torch
from torch import nn

from attndeploy.errors import require, require_divisible


class SelectiveKernel(nn.Module):
    """SKConv: M dilated branches fused by a per-channel softmax over the branches.

    Args:
        channels: input channels C.
        out_channels: output channels C_out (defaults to `channels`).
        num_branches: number of branches M (>= 1); branch i uses dilation 1 + i.
        groups: groups of every branch conv; must divide C and C_out.
        reduction: r in d = max(C_out // r, min_dim).
        min_dim: L in d = max(C_out // r, L).
        stride: stride of every branch conv.
    """

    def __init__(
        self,
        channels: int,
        out_channels: int | None = None,
        num_branches: int = 2,
        groups: int = 32,
        reduction: int = 16,
        min_dim: int = 32,
        stride: int = 1,
    ) -> None:
        super().__init__()
        out_channels = channels if out_channels is None else out_channels
        require(channels >= 1, "channels must be positive", ">= 1", channels)
        require(out_channels >= 1, "out_channels must be positive", ">= 1", out_channels)
        require(num_branches >= 1, "num_branches must be at least 1", ">= 1", num_branches)
        require(groups >= 1, "groups must be positive", ">= 1", groups)
        require(reduction >= 1, "reduction must be positive", ">= 1", reduction)
        require(min_dim >= 1, "min_dim must be positive", ">= 1", min_dim)
        require(stride >= 1, "stride must be positive", ">= 1", stride)
        require_divisible("channels", channels, groups, "groups")
        require_divisible("out_channels", out_channels, groups, "groups")
        self.channels = channels
        self.out_channels = out_channels
        self.num_branches = num_branches
        self.groups = groups
        self.reduction = reduction
        self.min_dim = min_dim
        self.stride = stride
        self.M = num_branches  # the official attribute name
        d = max(out_channels // reduction, min_dim)
        self.d = d

        self.conv = nn.ModuleList()
        for i in range(num_branches):
            self.conv.append(nn.Sequential(
                nn.Conv2d(channels, out_channels, 3, stride, padding=1 + i, dilation=1 + i,
                          groups=groups, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
            ))
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Sequential(
            nn.Conv2d(out_channels, d, 1, bias=False),
            nn.BatchNorm2d(d),
            nn.ReLU(inplace=True),
        )
        self.fc2 = nn.Conv2d(d, out_channels * num_branches, 1, 1, bias=False)
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) -> (N, C_out, H', W') with H' = (H - 1) // stride + 1."""
        batch_size = x.size(0)
        output = [conv(x) for conv in self.conv]  # M x (N, C_out, H', W')
        u = output[0]
        for branch in output[1:]:
            u = u + branch
        s = self.global_pool(u)  # (N, C_out, 1, 1)
        z = self.fc1(s)  # (N, d, 1, 1)
        a_b = self.fc2(z)  # (N, M * C_out, 1, 1)
        a_b = a_b.reshape(batch_size, self.M, self.out_channels, -1)
        a_b = self.softmax(a_b)  # across the M branches
        weights = a_b.chunk(self.M, dim=1)
        v = output[0] * weights[0].reshape(batch_size, self.out_channels, 1, 1)
        for branch, weight in zip(output[1:], weights[1:]):
            v = v + branch * weight.reshape(batch_size, self.out_channels, 1, 1)
        return v


class SelectiveKernelDeploy(SelectiveKernel):
    """`SelectiveKernel` with an export-safe forward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) -> (N, C_out, H', W')."""
        output = [conv(x) for conv in self.conv]  # M x (N, C_out, H', W')
        u = output[0]
        for branch in output[1:]:
            u = u + branch
        s = u.mean((2, 3), keepdim=True)  # (N, C_out, 1, 1)
        logits = self.fc2(self.fc1(s)).unflatten(1, (self.num_branches, self.out_channels))
        a = torch.softmax(logits, dim=1)  # (N, M, C_out, 1, 1), across branches
        v = output[0] * a[:, 0]
        for i in range(1, self.num_branches):
            v = v + output[i] * a[:, i]
        return v

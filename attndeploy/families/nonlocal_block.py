"""Non-local block, embedded-Gaussian form (2-D).

Paper: Wang et al., "Non-local Neural Networks", CVPR 2018, arXiv:1711.07971.
Structure, initialisation and `state_dict` layout match AlexHex7/Non-local_pytorch
`lib/non_local_embedded_gaussian.py` (`NONLocalBlock2D`): `g`, `theta`, `phi` (1x1 convs
C -> C_inter), `W` = (1x1 conv C_inter -> C, BN) with the BN zero-initialised, or a single
zero-initialised conv when `bn_layer=False`. With `sub_sample`, `g` and `phi` become
(conv, MaxPool2d(2)), so their keys read `g.0.*` / `phi.0.*`.

Deploy twin: `NonLocalBlockDeploy`, same ``state_dict``, export-friendly forward.

Reshapes use `flatten` and sizes read as graph shapes, so N, H, W stay dynamic. With
`sub_sample`, MaxPool2d(2) floors odd H, W exactly as in eager mode. The (HW x HW') energy
is unscaled: for fp16 engines keep MatMul/Softmax in fp32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attndeploy.errors import require


class NonLocalBlock(nn.Module):
    """z = W(softmax(theta(x)^T phi(x)) g(x)) + x over all H*W positions.

    Args:
        channels: input (and output) channels C.
        inter_channels: C_inter of theta, phi, g (default C // 2, at least 1).
        sub_sample: max-pool (2x2, floor) phi and g, so keys come from (H//2)*(W//2) positions.
        bn_layer: W ends with a BatchNorm2d (zero-initialised) instead of a zero-initialised conv.
    """

    def __init__(
        self,
        channels: int,
        inter_channels: int | None = None,
        sub_sample: bool = False,
        bn_layer: bool = True,
    ) -> None:
        super().__init__()
        require(channels >= 1, "channels must be positive", ">= 1", channels)
        if inter_channels is None:
            inter_channels = max(channels // 2, 1)
        require(inter_channels >= 1, "inter_channels must be positive", ">= 1", inter_channels)
        self.channels = channels
        self.inter_channels = inter_channels
        self.sub_sample = sub_sample
        self.bn_layer = bn_layer
        self.in_channels = channels  # the official attribute name

        g = nn.Conv2d(channels, inter_channels, kernel_size=1, stride=1, padding=0)
        w_conv = nn.Conv2d(inter_channels, channels, kernel_size=1, stride=1, padding=0)
        self.g: nn.Module = g
        if bn_layer:
            w_bn = nn.BatchNorm2d(channels)
            nn.init.constant_(w_bn.weight, 0)
            nn.init.constant_(w_bn.bias, 0)
            self.W: nn.Module = nn.Sequential(w_conv, w_bn)
        else:
            for p in w_conv.parameters():  # weight and bias
                nn.init.constant_(p, 0)
            self.W = w_conv
        self.theta = nn.Conv2d(channels, inter_channels, kernel_size=1, stride=1, padding=0)
        phi = nn.Conv2d(channels, inter_channels, kernel_size=1, stride=1, padding=0)
        self.phi: nn.Module = phi
        if sub_sample:
            self.g = nn.Sequential(g, nn.MaxPool2d(kernel_size=(2, 2)))
            self.phi = nn.Sequential(phi, nn.MaxPool2d(kernel_size=(2, 2)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) -> (N, C, H, W). With sub_sample, H and W must be >= 2."""
        batch_size = x.size(0)
        g_x = self.g(x).view(batch_size, self.inter_channels, -1).permute(0, 2, 1)  # (N, HW', Ci)
        theta_x = self.theta(x).view(batch_size, self.inter_channels, -1).permute(0, 2, 1)  # (N, HW, Ci)
        phi_x = self.phi(x).view(batch_size, self.inter_channels, -1)  # (N, Ci, HW')
        f = torch.matmul(theta_x, phi_x)  # (N, HW, HW')
        f_div_c = F.softmax(f, dim=-1)
        y = torch.matmul(f_div_c, g_x)  # (N, HW, Ci)
        y = y.permute(0, 2, 1).contiguous()
        y = y.view(batch_size, self.inter_channels, *x.size()[2:])
        return self.W(y) + x


class NonLocalBlockDeploy(NonLocalBlock):
    """`NonLocalBlock` with an export-safe forward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) -> (N, C, H, W)."""
        g_x = self.g(x).flatten(2).transpose(1, 2)  # (N, HW', Ci)
        theta_x = self.theta(x).flatten(2).transpose(1, 2)  # (N, HW, Ci)
        phi_x = self.phi(x).flatten(2)  # (N, Ci, HW')
        f = torch.softmax(torch.matmul(theta_x, phi_x), dim=-1)  # (N, HW, HW')
        y = torch.matmul(f, g_x).transpose(1, 2)  # (N, Ci, HW)
        y = y.reshape(x.shape[0], -1, x.shape[2], x.shape[3])  # (N, Ci, H, W)
        return self.W(y) + x

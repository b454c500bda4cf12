"""Export-friendly twin of `attndeploy.layers.coordatt.CoordAtt` (same ``state_dict``).

The official ``AdaptiveAvgPool2d((None, 1))`` fails the TorchScript exporter with dynamic
H, W and is baked to the sample size by the dynamo exporter; here the pools are ``mean``
over W and over H, and the split back is a slice at H, so the graph is right at every H, W.
"""

from __future__ import annotations

import torch

from attndeploy.layers.coordatt import CoordAtt


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

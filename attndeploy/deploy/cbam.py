"""Export-friendly twin of `attndeploy.layers.cbam.CBAM` (same ``state_dict``).

The official pools use kernels read from ``x.size()``, which the exporters bake in; here
the descriptors are ``mean`` / ``amax`` reductions over H, W (``ReduceMean``/``ReduceMax``),
so the graph is right at every H, W.
"""

from __future__ import annotations

import torch

from attndeploy.layers.cbam import CBAM


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

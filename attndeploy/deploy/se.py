"""Export-friendly twin of `attndeploy.layers.se.SqueezeExcite` (same ``state_dict``).

The squeeze is a ``mean`` over H, W (ONNX ``ReduceMean``) and the gate is broadcast by
indexing, so no shape value is read back from the input.
"""

from __future__ import annotations

import torch

from attndeploy.layers.se import SqueezeExcite


class SqueezeExciteDeploy(SqueezeExcite):
    """`SqueezeExcite` with a shape-free forward. x (N, C, H, W) -> (N, C, H, W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) -> (N, C, H, W)."""
        w = self.fc(x.mean((2, 3)))  # (N, C)
        return x * w[:, :, None, None]

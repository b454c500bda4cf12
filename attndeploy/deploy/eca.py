"""Export-friendly twin of `attndeploy.layers.eca.ECA` (same ``state_dict``).

The squeeze is a ``mean`` over H, W; the (N, 1, C) sequence is made by ``unsqueeze`` and
the gate broadcast by indexing, with no ``expand_as`` of the input's shape.
"""

from __future__ import annotations

import torch

from attndeploy.layers.eca import ECA


class ECADeploy(ECA):
    """`ECA` with a shape-free forward. x (N, C, H, W) -> (N, C, H, W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) -> (N, C, H, W)."""
        y = self.conv(x.mean((2, 3)).unsqueeze(1))  # (N, 1, C)
        return x * torch.sigmoid(y)[:, 0, :, None, None]

"""Export-safe SPD-Conv: four step-2 `Slice`s, one `Concat`, Conv -> BatchNorm -> SiLU.

The official slicing already exports with dynamic H, W in both exporters; the twin spells
it out on fixed axes (no `...` indexing) and keeps the even-size check eager-only: it is
skipped while tracing or exporting, so the exported graph assumes even H, W (odd sizes
fail in its `Concat`). It is deliberately not `SpaceToDepth`/`pixel_unshuffle`: those
order the channels differently from the official code (see `attndeploy.layers.spd`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from attndeploy.layers.spd import SPDConv, require_even_hw


class SPDConvDeploy(SPDConv):
    """`SPDConv` with the same weights; even H, W are a precondition of the exported graph."""

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, C, H, W) with even H, W -> (N, C_out, H/2, W/2)."""
        require_even_hw(x)
        y = torch.cat([x[:, :, 0::2, 0::2], x[:, :, 1::2, 0::2], x[:, :, 0::2, 1::2], x[:, :, 1::2, 1::2]], 1)
        return self.conv.act(self.conv.bn(self.conv.conv(y)))

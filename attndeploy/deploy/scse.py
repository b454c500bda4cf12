"""Export-friendly twin of `attndeploy.layers.scse.SCSE` (same ``state_dict``).

The cSE squeeze is a ``mean`` over H, W (``ReduceMean``) instead of adaptive pooling;
``x`` is factored out of the sum of the two gates; the sSE 1×1 conv to one channel is a
MatMul (see `channel_sum`).
"""

from __future__ import annotations

import torch

from attndeploy.deploy.channel_sum import conv1x1_to_one_channel
from attndeploy.layers.scse import SCSE


class SCSEDeploy(SCSE):
    """`SCSE` with a reduction-based squeeze. x (N, C, H, W) -> (N, C, H, W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) -> (N, C, H, W)."""
        _, conv1, relu, conv2, gate = self.cSE
        c = gate(conv2(relu(conv1(x.mean((2, 3), keepdim=True)))))  # (N, C, 1, 1)
        conv, s_gate = self.sSE
        s = s_gate(conv1x1_to_one_channel(conv, x)).view_as(x[:, :1])  # (N, 1, H, W)
        return x * (c + s)  # (N, C, 1, 1) + (N, 1, H, W)

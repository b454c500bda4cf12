"""Export-friendly Global Context block (same `state_dict` as `attndeploy.layers.gc`).

Reshapes use `flatten` and `-1` instead of sizes read from the input. The LayerNorm is kept
as `nn.LayerNorm`: the TorchScript exporter writes `LayerNormalization` at opset >= 17 and
a ReduceMean/Sub/Pow/Sqrt decomposition below (that form overflows in fp16: keep it fp32).
"""

from __future__ import annotations

import torch

from attndeploy.deploy.channel_sum import conv1x1_to_one_channel
from attndeploy.layers.gc import ContextBlock


class ContextBlockDeploy(ContextBlock):
    """`ContextBlock` with an export-safe forward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) -> (N, C, H, W)."""
        if self.pooling_type == "att":
            mask = torch.softmax(conv1x1_to_one_channel(self.conv_mask, x), dim=2)  # (N, 1, HW)
            context = torch.matmul(x.flatten(2), mask.transpose(1, 2)).unsqueeze(-1)  # (N, C, 1, 1)
        else:
            context = x.mean((2, 3), keepdim=True)
        out = x
        if self.channel_mul_conv is not None:
            out = out * torch.sigmoid(self.channel_mul_conv(context))
        if self.channel_add_conv is not None:
            out = out + self.channel_add_conv(context)
        return out

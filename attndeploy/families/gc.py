"""Global Context block (GCNet `ContextBlock`).

Paper: Cao et al., "GCNet: Non-local Networks Meet Squeeze-Excitation Networks and
Beyond", ICCVW 2019, arXiv:1904.11492. Structure, initialisation and `state_dict` layout
match xvjiarui/GCNet `mmdet/ops/gcb/context_block.py`: `conv_mask` (att pooling),
`channel_add_conv.{0,1,3}` and `channel_mul_conv.{0,1,3}` (1x1 conv, LayerNorm([planes,1,1]),
ReLU, 1x1 conv).

The official init zeroes the last conv of each transform, so a fresh block is the identity
(add) or x * 0.5 (mul).

Deploy twin: `ContextBlockDeploy`, same ``state_dict``, export-friendly forward.

Reshapes use `flatten` and `-1` instead of sizes read from the input. The LayerNorm is kept
as `nn.LayerNorm`: the TorchScript exporter writes `LayerNormalization` at opset >= 17 and
a ReduceMean/Sub/Pow/Sqrt decomposition below (that form overflows in fp16: keep it fp32).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from attndeploy.errors import require
from attndeploy.ops.channel_sum import conv1x1_to_one_channel

POOLING_TYPES = ("avg", "att")
FUSION_TYPES = ("channel_add", "channel_mul")


def _transform(channels: int, planes: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, planes, kernel_size=1),
        nn.LayerNorm([planes, 1, 1]),
        nn.ReLU(inplace=True),
        nn.Conv2d(planes, channels, kernel_size=1),
    )


class ContextBlock(nn.Module):
    """Global context: attention-pooled (or averaged) context, transformed, fused into x.

    Args:
        channels: input (and output) channels C.
        ratio: bottleneck ratio; planes = int(C * ratio) (>= 1).
        pooling_type: 'att' (1x1 conv C->1, softmax over H*W) or 'avg' (GAP).
        fusion_types: non-empty subset of ('channel_add', 'channel_mul').
    """

    def __init__(
        self,
        channels: int,
        ratio: float = 1 / 4,
        pooling_type: str = "att",
        fusion_types: Sequence[str] = ("channel_add",),
    ) -> None:
        super().__init__()
        require(channels >= 1, "channels must be positive", ">= 1", channels)
        require(pooling_type in POOLING_TYPES, "pooling_type must be a known pooling",
                "one of " + ", ".join(POOLING_TYPES), repr(pooling_type))
        require(isinstance(fusion_types, (list, tuple)) and len(fusion_types) > 0,
                "fusion_types must be a non-empty list or tuple", "e.g. ('channel_add',)", repr(fusion_types))
        unknown = [f for f in fusion_types if f not in FUSION_TYPES]
        require(not unknown, "fusion_types must be a subset of the known fusions",
                "a subset of " + ", ".join(FUSION_TYPES), repr(tuple(fusion_types)))
        planes = int(channels * ratio)
        require(planes >= 1, "planes = int(channels * ratio) must be at least 1", ">= 1",
                f"{planes} (channels={channels}, ratio={ratio})")
        self.channels = channels
        self.ratio = ratio
        self.pooling_type = pooling_type
        self.fusion_types = tuple(fusion_types)
        self.inplanes = channels  # the official attribute names
        self.planes = planes

        if pooling_type == "att":
            self.conv_mask = nn.Conv2d(channels, 1, kernel_size=1)
            self.softmax = nn.Softmax(dim=2)
        else:
            self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.channel_add_conv = _transform(channels, planes) if "channel_add" in fusion_types else None
        self.channel_mul_conv = _transform(channels, planes) if "channel_mul" in fusion_types else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Official init: kaiming (fan_in) conv_mask with zero bias, zero last conv of each transform."""
        if self.pooling_type == "att":
            nn.init.kaiming_normal_(self.conv_mask.weight, a=0, mode="fan_in", nonlinearity="relu")
            nn.init.constant_(self.conv_mask.bias, 0)  # type: ignore[arg-type]
        for transform in (self.channel_add_conv, self.channel_mul_conv):
            if transform is not None:
                for p in transform[-1].parameters():  # weight and bias of the last conv
                    nn.init.zeros_(p)

    def spatial_pool(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) -> context (N, C, 1, 1)."""
        batch, channel, height, width = x.size()
        if self.pooling_type == "att":
            input_x = x.view(batch, channel, height * width).unsqueeze(1)  # (N, 1, C, HW)
            context_mask = self.conv_mask(x).view(batch, 1, height * width)
            context_mask = self.softmax(context_mask).unsqueeze(-1)  # (N, 1, HW, 1)
            context = torch.matmul(input_x, context_mask)  # (N, 1, C, 1)
            context = context.view(batch, channel, 1, 1)
        else:
            context = self.avg_pool(x)
        return context

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) -> (N, C, H, W)."""
        return self.fuse(x, self.spatial_pool(x))

    def fuse(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """x (N, C, H, W), context (N, C, 1, 1) -> x scaled by the mul branch plus the add branch."""
        out = x
        if self.channel_mul_conv is not None:
            out = out * torch.sigmoid(self.channel_mul_conv(context))
        if self.channel_add_conv is not None:
            out = out + self.channel_add_conv(context)
        return out


class ContextBlockDeploy(ContextBlock):
    """`ContextBlock` with an export-safe forward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) -> (N, C, H, W)."""
        if self.pooling_type == "att":
            mask = torch.softmax(conv1x1_to_one_channel(self.conv_mask, x), dim=2)  # (N, 1, HW)
            context = torch.matmul(x.flatten(2), mask.transpose(1, 2)).unsqueeze(-1)  # (N, C, 1, 1)
        else:
            context = x.mean((2, 3), keepdim=True)
        return self.fuse(x, context)

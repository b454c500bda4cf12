"""Deformable convolution block: offset (and mask) convs feeding `torchvision.ops.DeformConv2d`.

Papers: Dai et al., "Deformable Convolutional Networks", ICCV 2017, arXiv:1703.06211;
Zhu et al., "Deformable ConvNets v2: More Deformable, Better Results", CVPR 2019,
arXiv:1811.11168. Official code: https://github.com/msracver/Deformable-ConvNets (v1),
the DCNv2 `ModulatedDeformConvPack` (zero-initialised offset/mask conv); the operator is
torchvision's `deform_conv2d`, whose layout this block keeps: `deform_conv.weight`,
`deform_conv.bias`, `offset_conv.*`, `mask_conv.*`.

Offset channel `g·2·k·k + 2·(i·k + j) + {0: Δy, 1: Δx}`; mask channel `g·k·k + i·k + j`.
Export hazard kept: torchvision registers no ONNX export for `deform_conv2d`.

Deploy twin: `DeformConvBlockDeploy`, same ``state_dict``: one functional
`torchvision.ops.deform_conv2d` call.

ONNX lowering of `deform_conv2d` (to ONNX `DeformConv`, opset >= 19, a `GridSample`
decomposition, or TensorRT's plugin node) belongs to the export-time lowering
`attndeploy.lowering.deformconv` (this family's `ModuleSpec.lowering`), not to this
module: torchvision registers no ONNX symbolic, so neither exporter handles this graph
on its own.
"""

from __future__ import annotations

from typing import Optional

from torch import Tensor, nn
from torchvision.ops import DeformConv2d, deform_conv2d

from attndeploy.errors import require, require_divisible


class DeformConvBlock(nn.Module):
    """`DeformConv2d(x, offset_conv(x), sigmoid(mask_conv(x)))`; v2 (modulated) by default.

    The offset and mask convs share the main conv's kernel size, stride, padding and
    dilation, so their output grid is the deformable conv's; both start at zero (offsets
    0, mask 0.5), as in DCNv2.

    Args:
        channels: C, the input channels.
        out_channels: C_out.
        kernel_size: k (square kernel).
        stride, dilation: of the deformable conv (and the offset/mask convs).
        padding: None gives 'same' padding for stride 1, `dilation · (k - 1) // 2`.
        groups: conv groups; divides `channels` and `out_channels`.
        offset_groups: offset (and mask) groups; divides `channels`.
        modulated: DCNv2 mask branch on (True) or DCNv1 (False, no `mask_conv`).
        bias: bias of the deformable conv.
    """

    def __init__(self, channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: Optional[int] = None, dilation: int = 1, groups: int = 1, offset_groups: int = 1,
                 modulated: bool = True, bias: bool = True) -> None:
        super().__init__()
        for name, value in (("channels", channels), ("out_channels", out_channels), ("kernel_size", kernel_size),
                            ("stride", stride), ("dilation", dilation), ("groups", groups),
                            ("offset_groups", offset_groups)):
            require(isinstance(value, int) and value >= 1, f"deformconv {name} must be a positive int", ">= 1", value)
        require(padding is None or (isinstance(padding, int) and padding >= 0),
                "deformconv padding must be None or an int >= 0", "None or >= 0", padding)
        require_divisible("channels", channels, groups, "groups")
        require_divisible("out_channels", out_channels, groups, "groups")
        require_divisible("channels", channels, offset_groups, "offset_groups")
        self.channels = channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.groups = groups
        self.offset_groups = offset_groups
        self.modulated = modulated
        self.bias = bias

        pad = dilation * (kernel_size - 1) // 2 if padding is None else padding
        taps = offset_groups * kernel_size * kernel_size
        self.offset_conv = nn.Conv2d(channels, 2 * taps, kernel_size, stride, pad, dilation)
        for p in self.offset_conv.parameters():
            nn.init.zeros_(p)
        self.mask_conv: Optional[nn.Conv2d] = None
        if modulated:
            self.mask_conv = nn.Conv2d(channels, taps, kernel_size, stride, pad, dilation)
            for p in self.mask_conv.parameters():
                nn.init.zeros_(p)
        self.deform_conv = DeformConv2d(channels, out_channels, kernel_size, stride, pad, dilation, groups, bias)

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, C, H, W) -> (N, C_out, H', W'), H' = (H + 2p - d·(k-1) - 1) // stride + 1.

        offset: (N, 2·offset_groups·k·k, H', W'); mask: (N, offset_groups·k·k, H', W').
        """
        offset = self.offset_conv(x)
        mask = self.mask_conv(x).sigmoid() if self.mask_conv is not None else None
        return self.deform_conv(x, offset, mask)


class DeformConvBlockDeploy(DeformConvBlock):
    """`DeformConvBlock` with the same weights, calling the operator directly."""

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, C, H, W) -> (N, C_out, H', W') as `DeformConvBlock.forward`."""
        offset = self.offset_conv(x)
        mask = self.mask_conv(x).sigmoid() if self.mask_conv is not None else None
        dc = self.deform_conv
        return deform_conv2d(x, offset, dc.weight, dc.bias, stride=dc.stride, padding=dc.padding,
                             dilation=dc.dilation, mask=mask)

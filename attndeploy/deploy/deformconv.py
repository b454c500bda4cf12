"""Deploy twin of the deformable conv block: one functional `torchvision.ops.deform_conv2d` call.

ONNX lowering of `deform_conv2d` (to ONNX `DeformConv`, opset >= 19, or a `GridSample`
decomposition) belongs to the exporter's rewrites, not to this module: torchvision
registers no ONNX symbolic, so neither exporter handles this graph on its own.
"""

from __future__ import annotations

from torch import Tensor
from torchvision.ops import deform_conv2d

from attndeploy.layers.deformconv import DeformConvBlock


class DeformConvBlockDeploy(DeformConvBlock):
    """`DeformConvBlock` with the same weights, calling the operator directly."""

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, C, H, W) -> (N, C_out, H', W') as `DeformConvBlock.forward`."""
        offset = self.offset_conv(x)
        mask = self.mask_conv(x).sigmoid() if self.mask_conv is not None else None
        dc = self.deform_conv
        return deform_conv2d(x, offset, dc.weight, dc.bias, stride=dc.stride, padding=dc.padding,
                             dilation=dc.dilation, mask=mask)

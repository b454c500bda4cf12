"""SPD-Conv: space-to-depth followed by a non-strided convolution.

Paper: Sunkara & Luo, "No More Strided Convolutions or Pooling: A New CNN Building Block
for Low-Resolution Images and Small Objects", ECML PKDD 2022, arXiv:2208.03641.
Official code: https://github.com/LabSAINT/SPD-Conv (`YOLOv5-SPD/models/common.py`:
`space_to_depth` and YOLOv5's `Conv`). The layout is YOLOv5's `Focus`, which fuses the
same slicing with the following `Conv(4·C, C_out, k)`: `conv.conv.weight`, `conv.bn.*`.

The four slices are concatenated in the official order `[::2, ::2], [1::2, ::2],
[::2, 1::2], [1::2, 1::2]` (rows first); this differs from ONNX `SpaceToDepth` and from
`pixel_unshuffle`, which interleave per channel.

Deploy twin: `SPDConvDeploy`, same ``state_dict``: four step-2 `Slice`s, one `Concat`,
Conv -> BatchNorm -> SiLU.

The official slicing already exports with dynamic H, W in both exporters; the twin spells
it out on fixed axes (no `...` indexing) and keeps the even-size check eager-only: it is
skipped while tracing or exporting, so the exported graph assumes even H, W (odd sizes
fail in its `Concat`). It is deliberately not `SpaceToDepth`/`pixel_unshuffle`: those
order the channels differently from the official code (see `space_to_depth`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attndeploy.errors import require


class Conv(nn.Module):
    """YOLOv5's `Conv`: Conv2d (no bias, 'same' padding) -> BatchNorm2d -> SiLU.

    x: (N, in_channels, H, W) -> (N, out_channels, H / stride, W / stride).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.SiLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


def require_even_hw(x: Tensor) -> None:
    """Raise `UsageError` for odd H or W in eager mode; a no-op while tracing or exporting."""
    if torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.compiler.is_exporting():
        return
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        axis, size = ("H", h) if h % 2 else ("W", w)
        require(False, "spd needs even H and W", "even H, W", f"{axis}={size} in {tuple(x.shape)}")


def space_to_depth(x: Tensor) -> Tensor:
    """x: (N, C, H, W) -> (N, 4C, H/2, W/2), channel blocks in the official slice order."""
    return torch.cat([x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]], 1)


class SPDConv(nn.Module):
    """Space-to-depth (factor 2) then a non-strided `Conv(4·channels, out_channels, kernel_size)`.

    Args:
        channels: C, the input channels.
        out_channels: C_out.
        kernel_size: k of the non-strided convolution (odd: 'same' padding k // 2).
    """

    def __init__(self, channels: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        for name, value in (("channels", channels), ("out_channels", out_channels)):
            require(isinstance(value, int) and value >= 1, f"spd {name} must be a positive int", ">= 1", value)
        require(isinstance(kernel_size, int) and kernel_size >= 1 and kernel_size % 2 == 1,
                "spd kernel_size must be a positive odd int ('same' padding)", "1, 3, 5, ...", kernel_size)
        self.channels = channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.conv = Conv(channels * 4, out_channels, kernel_size, 1)

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, C, H, W) with even H, W -> (N, C_out, H/2, W/2)."""
        require_even_hw(x)
        return self.conv(space_to_depth(x))


class SPDConvDeploy(SPDConv):
    """`SPDConv` with the same weights; even H, W are a precondition of the exported graph."""

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, C, H, W) with even H, W -> (N, C_out, H/2, W/2)."""
        require_even_hw(x)
        y = torch.cat([x[:, :, 0::2, 0::2], x[:, :, 1::2, 0::2], x[:, :, 0::2, 1::2], x[:, :, 1::2, 1::2]], 1)
        return self.conv.act(self.conv.bn(self.conv.conv(y)))

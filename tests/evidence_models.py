"""Models written the way code nobody here wrote is written, one per pattern of the evidence issue.

Every model maps (N, C, H, W) float32 to tensors; the docstring says which rule or hazard
it carries. None of them uses attndeploy's classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TinyDetector(nn.Module):
    """A stride-32 backbone with an FPN-style neck: the upsampled deep map is concatenated with a shallow one.

    (N, 3, H, W) -> (N, 4 + 2, H/8 * W/8 + H/16 * W/16 ... ) like a YOLO head: H and W must be
    multiples of 32 (else the Concat sizes differ). Outputs reach the hundreds (box-like).
    """

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.SiLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.SiLU(),
                                  nn.Conv2d(16, 16, 3, 2, 1), nn.SiLU())            # /8
        self.down = nn.Sequential(nn.Conv2d(16, 32, 3, 2, 1), nn.SiLU(), nn.Conv2d(32, 32, 3, 2, 1), nn.SiLU())  # /32
        self.up = nn.Upsample(scale_factor=4, mode="nearest")
        self.head = nn.Conv2d(48, 6, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p3 = self.stem(x)
        p5 = self.down(p3)
        y = self.head(torch.cat([p3, self.up(p5)], dim=1))             # (N, 6, H/8, W/8)
        boxes = y[:, :4].sigmoid() * 640.0                              # pixel-sized values
        return torch.cat([boxes, y[:, 4:].sigmoid()], dim=1).flatten(2)  # (N, 6, H/8 * W/8)


class EvenOnly(nn.Module):
    """Space-to-depth by strided slices: odd H or W makes the four slices differ in size (Concat fails)."""

    def __init__(self, channels: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4 * channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]], 1)
        return self.conv(x)


class SquareMultipleOf16(nn.Module):
    """Windows of 16 x 16 flattened and mixed across the two spatial axes: square inputs, multiples of 16 only."""

    def __init__(self, channels: int = 4) -> None:
        super().__init__()
        self.mix = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        tiles = x.reshape(n, c, h // 16, 16, w // 16, 16)
        mixed = self.mix(tiles.transpose(3, 5)).transpose(3, 5)
        return mixed.reshape(n, c, h, w) + x.transpose(2, 3)  # the transpose needs H == W


class FixedSize(nn.Module):
    """A learned positional table of one size, added to the input: only H, W = 12 x 20 work."""

    def __init__(self, channels: int = 4) -> None:
        super().__init__()
        self.pos = nn.Parameter(torch.randn(1, channels, 12, 20))
        self.conv = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x + self.pos)


class LargeOutputs(nn.Module):
    """Outputs of magnitude ~1e3 (a published module's scale): fp32 noise there is ~1e-4, past a fixed atol."""

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.a = nn.Conv2d(channels, 32, 3, padding=1)
        self.b = nn.Conv2d(32, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(F.gelu(self.a(x * 30.0))) * 40.0


class NestedOutputs(nn.Module):
    """A tuple holding a tensor, a dict of two tensors and a None."""

    def __init__(self, channels: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple:
        y = self.conv(x)
        return y, {"mean": y.mean((2, 3)), "peak": y.amax((2, 3))}, None


class DropoutInEval(nn.Module):
    """A blog attention gate calling `F.dropout(att, 0.1)`: F.dropout's `training` defaults to True, so eval
    mode does not turn it off and the output moves from run to run."""

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)
        self.gate = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        att = F.dropout(self.gate(x), 0.1)
        return self.conv(x) * att


class WritesIntoInput(nn.Module):
    """`out = x.view(...); out[:, i] = conv(...)`: eager writes into the caller's input."""

    def __init__(self, channels: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x.view(x.shape)
        for i in range(x.shape[1]):
            out[:, i:i + 1] = self.conv(x[:, i:i + 1])
        return out


class NonLeafGamma(nn.Module):
    """A blog SAGAN's gate kept as `torch.zeros(1, requires_grad=True) + 0.5`: a non-leaf tensor attribute."""

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.query = nn.Conv2d(channels, channels, 1)
        self.gamma = torch.zeros(1, requires_grad=True) + 0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.gamma * self.query(x)


class DriftsOneChannel(nn.Module):
    """A conv whose channel `channel` is scaled by 1 + `relative` in the exported graph only: an injected bug."""

    def __init__(self, conv: nn.Conv2d, channel: int = 0, relative: float = 1e-3) -> None:
        super().__init__()
        self.conv, self.channel, self.relative = conv, channel, relative

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if torch.onnx.is_in_onnx_export():
            scale = torch.ones(y.shape[1], dtype=y.dtype)
            scale[self.channel] += self.relative
            y = y * scale.view(1, -1, 1, 1)
        return y


class SingleImageShortcut(nn.Module):
    """An ECA-style gate with a single-image shortcut (`if b == 1: gate = gate.squeeze(0)`).

    The dynamo exporter specialises the branch to the example's batch of 1 and bakes it into a
    Reshape (wrong at batch 2); the TorchScript exporter writes a Squeeze that checks the size.
    """

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 1, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        gate = self.conv(x.mean((2, 3)).view(-1, 1, c)).sigmoid()
        if b == 1:
            return x * gate.view(x.shape[0], c, 1, 1).squeeze(0)
        return x * gate.view(b, c, 1, 1)


class DCTAttention(nn.Module):
    """Multi-spectral (DCT) channel attention as FcaNet-style code writes it: the input is pooled to the DCT size
    only `if` it differs, so a trace at that size keeps no pooling (right at the example's H, W, failing elsewhere).

    (N, C, H, W) -> (N, C, H, W); `weight` (C, dct_h, dct_w) holds one cosine basis per channel.
    """

    def __init__(self, channels: int = 16, dct_h: int = 7, dct_w: int = 7, reduction: int = 4) -> None:
        super().__init__()
        self.dct_h, self.dct_w = dct_h, dct_w
        u, v = torch.arange(dct_h).float(), torch.arange(dct_w).float()
        freq = (torch.arange(channels) % 4).float()[:, None, None]
        basis = torch.cos(torch.pi * freq * (u[None, :, None] + 0.5) / dct_h) \
            * torch.cos(torch.pi * freq * (v[None, None, :] + 0.5) / dct_w)
        self.register_buffer("weight", basis)
        self.fc = nn.Sequential(nn.Linear(channels, channels // reduction, bias=False), nn.ReLU(),
                                nn.Linear(channels // reduction, channels, bias=False), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        pooled = x
        if h != self.dct_h or w != self.dct_w:
            pooled = F.adaptive_avg_pool2d(x, (self.dct_h, self.dct_w))
        y = (pooled * self.weight).sum(dim=[2, 3])
        return x * self.fc(y).view(n, c, 1, 1)

"""A small detection-style host network with a pluggable attention slot per stage.

Backbone: a stride-2 stem (3x3 conv, BN, ReLU), then three ResNet stages of BasicBlocks
with widths ``w, 2w, 4w`` (strides 1, 2, 2); after each stage an attention module from the
registry (``attndeploy.create(name, channels=C, ...)``) or identity. Neck: FPN-style
top-down pathway: 1x1 lateral convs to ``2w`` channels, nearest upsampling to the
lateral's size (any H, W, odd included), 3x3 output convs. Output: three feature maps.

Shapes (width w, input (N, 3, H, W), H2 = ceil(H / 2), H4 = ceil(H2 / 2), H8 = ceil(H4 / 2)):
    p2 (N, 2w, H2, W2), p3 (N, 2w, H4, W4), p4 (N, 2w, H8, W8).

`attn="spd"` makes SPD-Conv the downsampling of stages 2 and 3 (it changes resolution and
channels), instead of an attention slot; it needs H and W divisible by 8.

Usable as a model source: ``attndeploy.nets.host:build_host``.
"""

from __future__ import annotations

import inspect

import torch.nn.functional as F
from torch import Tensor, nn

from attndeploy.errors import require
from attndeploy.registry import create, get_spec

DOWNSAMPLING = ("spd",)  # registry modules placed as a stage's downsampling layer


def conv_bn(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
            relu: bool = True) -> nn.Sequential:
    """Conv (no bias, 'same' padding) -> BN -> optional ReLU: (N, C_in, H, W) -> (N, C_out, H/s, W/s)."""
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False),
                               nn.BatchNorm2d(out_channels)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """ResNet BasicBlock: relu(bn(conv(relu(bn(conv(x))))) + shortcut(x)).

    x (N, C_in, H, W) -> (N, C_out, ceil(H/stride), ceil(W/stride)).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv_bn(in_channels, out_channels, 3, stride)
        self.conv2 = conv_bn(out_channels, out_channels, 3, 1, relu=False)
        self.shortcut = (nn.Identity() if stride == 1 and in_channels == out_channels
                         else conv_bn(in_channels, out_channels, 1, stride, relu=False))

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


def attention(name: str | None, channels: int) -> nn.Module:
    """The registry module `name` for `channels` (shape-preserving), or identity for None.

    Modules with an `out_channels` argument (acmix, deformconv, sk) get ``out_channels=channels``.
    """
    if name is None:
        return nn.Identity()
    spec = get_spec(name)  # an unknown name lists the valid ones
    params = inspect.signature(spec.reference.__init__).parameters
    kwargs = {"channels": channels, **({"out_channels": channels} if "out_channels" in params else {})}
    return create(name, **kwargs)


class HostNet(nn.Module):
    """Stem, three stages (each followed by `attn`), FPN-style neck; returns three maps.

    Args:
        attn: a registry name (see `attndeploy.list_modules()`), or None for no attention.
        width: w; stage channels are (w, 2w, 4w), the neck's 2w. A multiple of 8.
        depths: BasicBlocks per stage.
        attn_stages: the stages (1, 2, 3) that get an attention module; the others get identity.
    """

    def __init__(self, attn: str | None = "cbam", width: int = 32, depths: tuple[int, int, int] = (1, 1, 1),
                 attn_stages: tuple[int, ...] = (1, 2, 3)) -> None:
        super().__init__()
        require(isinstance(width, int) and width >= 8 and width % 8 == 0, "host width must be a multiple of 8",
                "8, 16, 32, ...", width)
        require(len(depths) == 3 and all(isinstance(d, int) and d >= 1 for d in depths),
                "host depths must be three positive ints", "e.g. (1, 1, 1)", depths)
        require(all(s in (1, 2, 3) for s in attn_stages), "host attn_stages must be among 1, 2, 3",
                "e.g. (1, 2, 3)", attn_stages)
        self.attn_name = attn
        self.width = width
        self.depths = tuple(depths)
        self.attn_stages = tuple(attn_stages)
        chans = (width, 2 * width, 4 * width)
        slot = None if attn in DOWNSAMPLING else attn
        self.stem = conv_bn(3, width, 3, 2)
        stages = []
        for i, (c_in, c_out, depth) in enumerate(zip((width, *chans[:2]), chans, depths)):
            stride = 1 if i == 0 else 2
            if attn in DOWNSAMPLING and stride == 2:
                blocks: list[nn.Module] = [create(attn, channels=c_in, out_channels=c_out)]
                blocks += [BasicBlock(c_out, c_out) for _ in range(depth)]
            else:
                blocks = [BasicBlock(c_in, c_out, stride), *(BasicBlock(c_out, c_out) for _ in range(depth - 1))]
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.attn1, self.attn2, self.attn3 = (attention(slot if i + 1 in attn_stages else None, c)
                                              for i, c in enumerate(chans))
        neck = 2 * width
        self.lateral = nn.ModuleList(nn.Conv2d(c, neck, 1) for c in chans)
        self.smooth = nn.ModuleList(conv_bn(neck, neck, 3) for _ in chans)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x: (N, 3, H, W) -> (p2, p3, p4), each (N, 2w, ·, ·) at strides 2, 4, 8."""
        c2 = self.attn1(self.layer1(self.stem(x)))
        c3 = self.attn2(self.layer2(c2))
        c4 = self.attn3(self.layer3(c3))
        p4 = self.lateral[2](c4)
        p3 = self.lateral[1](c3) + F.interpolate(p4, size=c3.shape[-2:], mode="nearest")
        p2 = self.lateral[0](c2) + F.interpolate(p3, size=c2.shape[-2:], mode="nearest")
        return self.smooth[0](p2), self.smooth[1](p3), self.smooth[2](p4)


def build_host(attn: str | None = "cbam", width: int = 32) -> nn.Module:
    """The host network with `attn` after each stage (see `HostNet`); a model-source factory."""
    return HostNet(attn=attn, width=width)

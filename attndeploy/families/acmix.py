"""ACmix: a mix of local window self-attention and a shift convolution.

Paper: Pan et al., "On the Integration of Self-Attention and Convolution", CVPR 2022,
arXiv:2111.14556. Structure, initialisation and `state_dict` layout match the `ACmix`
class of LeapLabTHU/ACmix (`ResNet/test_bottleneck.py`): `rate1`, `rate2`, `conv1`,
`conv2`, `conv3`, `conv_p`, `fc`, `dep_conv.weight` (the official init sets
`dep_conv.bias` to None, so there is no bias key).

Kept export hazards (the deploy twin removes them): `nn.Unfold` (exported as a
Gather-based im2col) and the positional grid built with `torch.linspace` in forward.
The official `position()` calls `.cuda()`; here the grid is created on `x.device`.

Departures that only widen the valid inputs (identical results where the official code
runs): `h_out = ceil(h / stride)` instead of `h // stride` (the official `view` fails for
H or W not divisible by `stride`), and `dep_conv` padding `kernel_conv // 2` (the official
hard-coded 1 equals it for the only working `kernel_conv`, 3).

Deploy twin: `ACmixDeploy`, same parameters as `ACmix`; only `forward` differs, with the
attention window read as k*k shifted slices (no `nn.Unfold`):
- the kernel_att x kernel_att window is read as static, stride-aware slices of the
  reflection-padded tensor, one window offset at a time, so no k*k-expanded tensor is
  materialised (the reference builds three of them);
- logits use q . shift(pad(k - pe)): reflection padding and shifting are linear, so
  shift(pad(k)) - shift(pad(pe)) = shift(pad(k - pe)); the official q . q_pe term is
  constant over the window and cancels in the softmax, so it is dropped;
- the positional grid comes from indices counted in `x.dtype` on `x.device` (no
  linspace, no float64, no H or W baked into the graph, no Gather on the shape);
- heads are split from channels with a static `split` + `stack`, never `unflatten`:
  TorchScript's unflatten (Shape, Slice up to a `Mod` of constants, Concat, Reshape) is
  opaque to the exporter's shape inference, which then keeps the traced static shape. The
  output then claims the sample's H x W, and a `t.shape` read of it downstream (the host
  FPN's `interpolate(size=c3.shape[-2:])`) is folded to a Constant of the sample size;
  the graph fails at other sizes. The way back to (N, C_out, ·, ·) is `reshape_as` a
  tensor of the target shape (Shape, Reshape) and a `flatten`, both shape-inferable;
- the conv path's fc runs as a grouped 1x1 conv (groups=head_dim, weight repeated) on
  channels interleaved per head_dim index, so its output is already dep_conv's layout.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from attndeploy.errors import require, require_divisible


def position(h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    """The official 2-channel grid of linspace(-1, 1) coordinates, (1, 2, h, w): [x, y]."""
    loc_w = torch.linspace(-1.0, 1.0, w, device=like.device).unsqueeze(0).repeat(h, 1)
    loc_h = torch.linspace(-1.0, 1.0, h, device=like.device).unsqueeze(1).repeat(1, w)
    return torch.cat([loc_w.unsqueeze(0), loc_h.unsqueeze(0)], 0).unsqueeze(0)


class ACmix(nn.Module):
    """rate1 * local window attention + rate2 * shift convolution, sharing q, k, v.

    Args:
        channels: input channels C (official `in_planes`).
        out_channels: output channels C_out (official `out_planes`), divisible by `head`.
        kernel_att: odd side of the attention window (reflection padding kernel_att // 2,
            so H and W must exceed it).
        head: number of attention heads; head_dim = C_out / head.
        kernel_conv: odd side of the shift convolution kernel.
        stride: spatial stride of both paths; output (N, C_out, ceil(H/s), ceil(W/s)).
        dilation: must be 1 (the official `nn.Unfold` ignores it, so other values break).
    """

    def __init__(
        self,
        channels: int,
        out_channels: int,
        kernel_att: int = 7,
        head: int = 4,
        kernel_conv: int = 3,
        stride: int = 1,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        require(channels >= 1, "channels must be positive", ">= 1", channels)
        require(head >= 1, "head must be positive", ">= 1", head)
        require(out_channels >= head, "out_channels must be at least head", f">= {head}", out_channels)
        require_divisible("out_channels", out_channels, head, "head")
        require(kernel_att >= 1 and kernel_att % 2 == 1, "kernel_att must be a positive odd number",
                "an odd number >= 1", kernel_att)
        require(kernel_conv >= 1 and kernel_conv % 2 == 1, "kernel_conv must be a positive odd number",
                "an odd number >= 1", kernel_conv)
        require(stride >= 1, "stride must be positive", ">= 1", stride)
        require(dilation == 1, "dilation must be 1 (the official unfold ignores it)", 1, dilation)
        self.channels = channels
        self.out_channels = out_channels
        self.kernel_att = kernel_att
        self.head = head
        self.kernel_conv = kernel_conv
        self.stride = stride
        self.dilation = dilation
        self.head_dim = out_channels // head

        self.rate1 = nn.Parameter(torch.empty(1))
        self.rate2 = nn.Parameter(torch.empty(1))
        self.conv1 = nn.Conv2d(channels, out_channels, kernel_size=1)
        self.conv2 = nn.Conv2d(channels, out_channels, kernel_size=1)
        self.conv3 = nn.Conv2d(channels, out_channels, kernel_size=1)
        self.conv_p = nn.Conv2d(2, self.head_dim, kernel_size=1)

        self.padding_att = (dilation * (kernel_att - 1) + 1) // 2
        self.pad_att = nn.ReflectionPad2d(self.padding_att)
        self.unfold = nn.Unfold(kernel_size=kernel_att, padding=0, stride=stride)
        self.softmax = nn.Softmax(dim=1)

        self.fc = nn.Conv2d(3 * head, kernel_conv * kernel_conv, kernel_size=1, bias=False)
        # Official: bias=True, then reset_parameters sets it to None.
        self.dep_conv = nn.Conv2d(kernel_conv * kernel_conv * self.head_dim, out_channels, kernel_size=kernel_conv,
                                  bias=False, groups=self.head_dim, padding=kernel_conv // 2, stride=stride)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """rate1 = rate2 = 0.5; dep_conv starts as a (trainable) one-hot shift kernel."""
        self.rate1.data.fill_(0.5)
        self.rate2.data.fill_(0.5)
        k = self.kernel_conv
        kernel = torch.zeros(k * k, k, k)
        for i in range(k * k):
            kernel[i, i // k, i % k] = 1.0
        self.dep_conv.weight = nn.Parameter(kernel.repeat(self.out_channels, 1, 1, 1), requires_grad=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) -> (N, C_out, ceil(H/stride), ceil(W/stride)); H, W > kernel_att // 2."""
        q, k, v = self.conv1(x), self.conv2(x), self.conv3(x)
        scaling = float(self.head_dim) ** -0.5
        b, c, h, w = q.shape
        h_out, w_out = (h - 1) // self.stride + 1, (w - 1) // self.stride + 1
        kk = self.kernel_att * self.kernel_att

        # attention path
        pe = self.conv_p(position(h, w, x))  # (1, head_dim, h, w)
        q_att = q.view(b * self.head, self.head_dim, h, w) * scaling
        k_att = k.view(b * self.head, self.head_dim, h, w)
        v_att = v.view(b * self.head, self.head_dim, h, w)
        if self.stride > 1:
            q_att = q_att[:, :, :: self.stride, :: self.stride]
            q_pe = pe[:, :, :: self.stride, :: self.stride]
        else:
            q_pe = pe

        unfold_k = self.unfold(self.pad_att(k_att)).view(b * self.head, self.head_dim, kk, h_out, w_out)
        unfold_rpe = self.unfold(self.pad_att(pe)).view(1, self.head_dim, kk, h_out, w_out)
        att = (q_att.unsqueeze(2) * (unfold_k + q_pe.unsqueeze(2) - unfold_rpe)).sum(1)  # (b*head, kk, h_out, w_out)
        att = self.softmax(att)

        out_att = self.unfold(self.pad_att(v_att)).view(b * self.head, self.head_dim, kk, h_out, w_out)
        out_att = (att.unsqueeze(1) * out_att).sum(2).view(b, self.out_channels, h_out, w_out)

        # convolution path
        f_all = self.fc(torch.cat([q.view(b, self.head, self.head_dim, h * w),
                                   k.view(b, self.head, self.head_dim, h * w),
                                   v.view(b, self.head, self.head_dim, h * w)], 1))  # (b, kc*kc, head_dim, h*w)
        f_conv = f_all.permute(0, 2, 1, 3).reshape(x.shape[0], -1, x.shape[-2], x.shape[-1])
        out_conv = self.dep_conv(f_conv)

        return self.rate1 * out_att + self.rate2 * out_conv


class ACmixDeploy(ACmix):
    """ACmix with an export-safe forward (dynamic N, H, W; both ONNX exporters)."""

    def _grid(self, x: torch.Tensor) -> torch.Tensor:
        """conv_p(position(H, W)) without linspace: (1, head_dim, H, W) in x.dtype."""
        # Indices 0..n-1 as a cumulative sum of ones over a slice of x: x.dtype, x.device, and
        # no Shape->Gather or Range in the graph (TorchScript reads x.shape[i] with Gather).
        iw = torch.ones_like(x[:1, :1, :1, :]).cumsum(3) - 1.0  # (1, 1, 1, W)
        ih = torch.ones_like(x[:1, :1, :, :1]).cumsum(2) - 1.0  # (1, 1, H, 1)
        # linspace(-1, 1, n) = -1 + 2 i / (n - 1); n = 1 gives [-1] as torch.linspace does.
        lw = iw * (2.0 / iw[:, :, :, -1:].clamp(min=1.0)) - 1.0
        lh = ih * (2.0 / ih[:, :, -1:, :].clamp(min=1.0)) - 1.0
        wx = self.conv_p.weight[:, 0:1].reshape(1, self.head_dim, 1, 1)
        wy = self.conv_p.weight[:, 1:2].reshape(1, self.head_dim, 1, 1)
        bias = cast(torch.Tensor, self.conv_p.bias).view(1, self.head_dim, 1, 1)
        return wx * lw + wy * lh + bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) -> (N, C_out, ceil(H/stride), ceil(W/stride)); H, W > kernel_att // 2."""
        s, p, d = self.stride, self.padding_att, self.head_dim
        q, k, v = self.conv1(x), self.conv2(x), self.conv3(x)
        # Per-head channel blocks, (N, head_dim, H, W) each: a static Split. No `unflatten`
        # (see the module docstring) and no `view` with x.shape (Gather in TorchScript).
        qs, ks, vs = q.split(d, 1), k.split(d, 1), v.split(d, 1)

        # attention path: (N*head, head_dim, H, W), batch-major as the reference's view
        q5 = torch.stack(qs, 1)  # (N, head, head_dim, H, W)
        if s > 1:
            q5 = q5[:, :, :, ::s, ::s]
        q_att = q5.flatten(0, 1) * float(d) ** -0.5
        k_att = torch.stack(ks, 1).flatten(0, 1)
        v_att = torch.stack(vs, 1).flatten(0, 1)
        kp = F.pad(k_att - self._grid(x), (p, p, p, p), mode="reflect")
        vp = F.pad(v_att, (p, p, p, p), mode="reflect")

        span = 2 * p
        offsets = [(i, j) for i in range(self.kernel_att) for j in range(self.kernel_att)]

        def window(t: torch.Tensor, i: int, j: int) -> torch.Tensor:
            # rows i, i+s, ... < H + i of the padded tensor: ceil(H / s) of them
            return t[:, :, i:(i - span) or None:s, j:(j - span) or None:s]

        att = torch.cat([(q_att * window(kp, i, j)).sum(1, keepdim=True) for i, j in offsets], 1)
        att = att.softmax(1).split(1, 1)  # kernel_att^2 x (N*head, 1, H_out, W_out)
        out_att = att[0] * window(vp, 0, 0)
        for n, (i, j) in enumerate(offsets[1:], 1):
            out_att = out_att + att[n] * window(vp, i, j)
        # back to (N, C_out, H_out, W_out): Reshape to Shape(q5), then a flatten
        out_att = out_att.reshape_as(q5).flatten(1, 2)

        # convolution path: fc mixes the 3*head maps (q, k, v per head) of each head_dim channel.
        # Channels interleaved per head_dim index, (N, head_dim * 3*head, H, W), so that fc is a
        # grouped 1x1 conv whose output is already dep_conv's layout (head_dim * kc*kc channels).
        qkv = torch.stack(qs + ks + vs, 2).flatten(1, 2)
        f_conv = F.conv2d(qkv, self.fc.weight.repeat(d, 1, 1, 1), groups=d)
        out_conv = self.dep_conv(f_conv)

        return self.rate1 * out_att + self.rate2 * out_conv

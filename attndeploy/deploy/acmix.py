"""Export-safe ACmix: the attention window as k*k shifted slices, no `nn.Unfold`.

Same parameters as `attndeploy.layers.acmix.ACmix`; only `forward` differs:
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

from attndeploy.layers.acmix import ACmix


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

"""User-style attention modules written the way common blog copies write them.

None of these use attndeploy's classes; each keeps the export hazard its copies have, so
the export-time rewrites (`attndeploy.rewrites`) and the torch lint can be tested on code
the toolkit has never seen:

- `CoordAttBlog`: pools created in forward from ``x.size()`` (``nn.AdaptiveAvgPool2d((h, 1))``).
- `MLCABlog`: ``nn.AdaptiveAvgPool2d(5)`` and ``F.adaptive_avg_pool2d(att, [h, w])`` back up.
- `ACmixBlog`: ``nn.Unfold`` and a ``torch.linspace`` position encoding (the official
  ``position(H, W, is_cuda)``, CPU branch).
- `SAGANBlog`: ``self.gamma = torch.zeros(1)`` (a plain tensor, not a Parameter); two outputs.
- `SKBlog`: branch accumulators made with ``torch.zeros([b, c, h, w])`` (CPU, default dtype).
- `GCBlog`: global context with an ``F.avg_pool2d(x, x.size()[2:])`` context.
- `CBAMBlog`: the channel gate pools with ``F.avg_pool2d`` / ``F.max_pool2d`` and a kernel
  from ``x.size()``.

Shapes: every module maps x (N, C, H, W) -> (N, C, H, W) (SAGAN also returns (N, HW, HW)).
"""

# ruff: noqa: RUF059, FURB163, PLR0402  (written as the blog copies are: unused unpacks, math.log(x, 2), import as nn)
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class h_swish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * F.relu6(x + 3) / 6


class CoordAttBlog(nn.Module):
    """Coordinate attention with its pools built in forward from x.size()."""

    def __init__(self, inp: int, oup: int, reduction: int = 32) -> None:
        super().__init__()
        mip = max(8, inp // reduction)
        self.conv1 = nn.Conv2d(inp, mip, kernel_size=1, stride=1, padding=0)
        self.bn1 = nn.BatchNorm2d(mip)
        self.act = h_swish()
        self.conv_h = nn.Conv2d(mip, oup, kernel_size=1, stride=1, padding=0)
        self.conv_w = nn.Conv2d(mip, oup, kernel_size=1, stride=1, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        n, c, h, w = x.size()
        pool_h = nn.AdaptiveAvgPool2d((h, 1))
        pool_w = nn.AdaptiveAvgPool2d((1, w))
        x_h = pool_h(x)
        x_w = pool_w(x).permute(0, 1, 3, 2)
        y = torch.cat([x_h, x_w], dim=2)
        y = self.act(self.bn1(self.conv1(y)))
        x_h, x_w = torch.split(y, [h, w], dim=2)
        x_w = x_w.permute(0, 1, 3, 2)
        a_h = self.conv_h(x_h).sigmoid()
        a_w = self.conv_w(x_w).sigmoid()
        return identity * a_w * a_h


class MLCABlog(nn.Module):
    """MLCA as copied: local 5x5 pool, global pool, ECA convs, pool back up to (H, W)."""

    def __init__(self, in_size: int, local_size: int = 5, gamma: int = 2, b: int = 1,
                 local_weight: float = 0.5) -> None:
        super().__init__()
        self.local_size = local_size
        self.gamma = gamma
        self.b = b
        t = int(abs(math.log(in_size, 2) + self.b) / self.gamma)
        k = t if t % 2 else t + 1
        self.conv = nn.Conv1d(1, 1, kernel_size=k, padding=(k - 1) // 2, bias=False)
        self.conv_local = nn.Conv1d(1, 1, kernel_size=k, padding=(k - 1) // 2, bias=False)
        self.local_weight = local_weight
        self.local_arv_pool = nn.AdaptiveAvgPool2d(local_size)
        self.global_arv_pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        local_arv = self.local_arv_pool(x)
        global_arv = self.global_arv_pool(local_arv)
        b, c, m, n = x.shape
        b_local, c_local, m_local, n_local = local_arv.shape
        temp_local = local_arv.view(b, c_local, -1).transpose(-1, -2).reshape(b, 1, -1)
        temp_global = global_arv.view(b, c, -1).transpose(-1, -2)
        y_local = self.conv_local(temp_local)
        y_global = self.conv(temp_global)
        y_local_transpose = y_local.reshape(b, self.local_size * self.local_size, c).transpose(-1, -2).view(
            b, c, self.local_size, self.local_size)
        y_global_transpose = y_global.view(b, -1).unsqueeze(-1).unsqueeze(-1)
        att_local = y_local_transpose.sigmoid()
        att_global = F.adaptive_avg_pool2d(y_global_transpose.sigmoid(), [self.local_size, self.local_size])
        att_all = F.adaptive_avg_pool2d(att_global * (1 - self.local_weight) + (att_local * self.local_weight),
                                        [m, n])
        return x * att_all


def position(H: int, W: int, is_cuda: bool = True) -> torch.Tensor:
    if is_cuda:
        loc_w = torch.linspace(-1.0, 1.0, W).cuda().unsqueeze(0).repeat(H, 1)
        loc_h = torch.linspace(-1.0, 1.0, H).cuda().unsqueeze(1).repeat(1, W)
    else:
        loc_w = torch.linspace(-1.0, 1.0, W).unsqueeze(0).repeat(H, 1)
        loc_h = torch.linspace(-1.0, 1.0, H).unsqueeze(1).repeat(1, W)
    loc = torch.cat([loc_w.unsqueeze(0), loc_h.unsqueeze(0)], 0).unsqueeze(0)
    return loc


def stride(x: torch.Tensor, stride: int) -> torch.Tensor:
    b, c, h, w = x.shape
    return x[:, :, ::stride, ::stride]


def init_rate_half(tensor: torch.Tensor) -> None:
    if tensor is not None:
        tensor.data.fill_(0.5)


class ACmixBlog(nn.Module):
    """ACmix as in LeapLabTHU/ACmix `test_bottleneck.py` (nn.Unfold, linspace position)."""

    def __init__(self, in_planes: int, out_planes: int, kernel_att: int = 7, head: int = 4, kernel_conv: int = 3,
                 stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.in_planes = in_planes
        self.out_planes = out_planes
        self.head = head
        self.kernel_att = kernel_att
        self.kernel_conv = kernel_conv
        self.stride = stride
        self.dilation = dilation
        self.rate1 = torch.nn.Parameter(torch.Tensor(1))
        self.rate2 = torch.nn.Parameter(torch.Tensor(1))
        self.head_dim = self.out_planes // self.head

        self.conv1 = nn.Conv2d(in_planes, out_planes, kernel_size=1)
        self.conv2 = nn.Conv2d(in_planes, out_planes, kernel_size=1)
        self.conv3 = nn.Conv2d(in_planes, out_planes, kernel_size=1)
        self.conv_p = nn.Conv2d(2, self.head_dim, kernel_size=1)

        self.padding_att = (self.dilation * (self.kernel_att - 1) + 1) // 2
        self.pad_att = torch.nn.ReflectionPad2d(self.padding_att)
        self.unfold = nn.Unfold(kernel_size=self.kernel_att, padding=0, stride=self.stride)
        self.softmax = torch.nn.Softmax(dim=1)

        self.fc = nn.Conv2d(3 * self.head, self.kernel_conv * self.kernel_conv, kernel_size=1, bias=False)
        self.dep_conv = nn.Conv2d(self.kernel_conv * self.kernel_conv * self.head_dim, out_planes,
                                  kernel_size=self.kernel_conv, bias=True, groups=self.head_dim, padding=1,
                                  stride=stride)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init_rate_half(self.rate1)
        init_rate_half(self.rate2)
        kernel = torch.zeros(self.kernel_conv * self.kernel_conv, self.kernel_conv, self.kernel_conv)
        for i in range(self.kernel_conv * self.kernel_conv):
            kernel[i, i // self.kernel_conv, i % self.kernel_conv] = 1.
        kernel = kernel.squeeze(0).repeat(self.out_planes, 1, 1, 1)
        self.dep_conv.weight = nn.Parameter(data=kernel, requires_grad=True)
        self.dep_conv.bias = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.conv1(x), self.conv2(x), self.conv3(x)
        scaling = float(self.head_dim) ** -0.5
        b, c, h, w = q.shape
        h_out, w_out = h // self.stride, w // self.stride

        pe = self.conv_p(position(h, w, x.is_cuda))

        q_att = q.view(b * self.head, self.head_dim, h, w) * scaling
        k_att = k.view(b * self.head, self.head_dim, h, w)
        v_att = v.view(b * self.head, self.head_dim, h, w)

        if self.stride > 1:
            q_att = stride(q_att, self.stride)
            q_pe = stride(pe, self.stride)
        else:
            q_pe = pe

        unfold_k = self.unfold(self.pad_att(k_att)).view(b * self.head, self.head_dim,
                                                         self.kernel_att * self.kernel_att, h_out, w_out)
        unfold_rpe = self.unfold(self.pad_att(pe)).view(1, self.head_dim, self.kernel_att * self.kernel_att, h_out,
                                                        w_out)

        att = (q_att.unsqueeze(2) * (unfold_k + q_pe.unsqueeze(2) - unfold_rpe)).sum(1)
        att = self.softmax(att)

        out_att = self.unfold(self.pad_att(v_att)).view(b * self.head, self.head_dim,
                                                        self.kernel_att * self.kernel_att, h_out, w_out)
        out_att = (att.unsqueeze(1) * out_att).sum(2).view(b, self.out_planes, h_out, w_out)

        f_all = self.fc(torch.cat([q.view(b, self.head, self.head_dim, h * w),
                                   k.view(b, self.head, self.head_dim, h * w),
                                   v.view(b, self.head, self.head_dim, h * w)], 1))
        f_conv = f_all.permute(0, 2, 1, 3).reshape(x.shape[0], -1, x.shape[-2], x.shape[-1])

        out_conv = self.dep_conv(f_conv)

        return self.rate1 * out_att + self.rate2 * out_conv


class SAGANBlog(nn.Module):
    """SAGAN self-attention with a plain-tensor gamma (not a Parameter); returns (out, attention)."""

    def __init__(self, in_dim: int) -> None:
        super().__init__()
        self.chanel_in = in_dim
        self.query_conv = nn.Conv2d(in_channels=in_dim, out_channels=in_dim // 8, kernel_size=1)
        self.key_conv = nn.Conv2d(in_channels=in_dim, out_channels=in_dim // 8, kernel_size=1)
        self.value_conv = nn.Conv2d(in_channels=in_dim, out_channels=in_dim, kernel_size=1)
        self.gamma = torch.zeros(1)
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m_batchsize, C, width, height = x.size()
        proj_query = self.query_conv(x).view(m_batchsize, -1, width * height).permute(0, 2, 1)
        proj_key = self.key_conv(x).view(m_batchsize, -1, width * height)
        energy = torch.bmm(proj_query, proj_key)
        attention = self.softmax(energy)
        proj_value = self.value_conv(x).view(m_batchsize, -1, width * height)
        out = torch.bmm(proj_value, attention.permute(0, 2, 1))
        out = out.view(m_batchsize, C, width, height)
        out = self.gamma * out + x
        return out, attention


class SKBlog(nn.Module):
    """Selective kernel with CPU `torch.zeros` accumulators and softmax across branches."""

    def __init__(self, features: int, M: int = 2, G: int = 8, r: int = 4, L: int = 16) -> None:
        super().__init__()
        d = max(int(features / r), L)
        self.M = M
        self.features = features
        self.convs = nn.ModuleList([])
        for i in range(M):
            self.convs.append(nn.Sequential(
                nn.Conv2d(features, features, kernel_size=3, stride=1, padding=1 + i, dilation=1 + i, groups=G,
                          bias=False),
                nn.BatchNorm2d(features),
                nn.ReLU(inplace=False)))
        self.gap = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Sequential(nn.Conv2d(features, d, kernel_size=1, stride=1, bias=False),
                                nn.BatchNorm2d(d), nn.ReLU(inplace=False))
        self.fcs = nn.ModuleList([nn.Conv2d(d, features, kernel_size=1, stride=1) for _ in range(M)])
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.size()
        feats_U = torch.zeros([b, c, h, w])
        feats = []
        for conv in self.convs:
            f = conv(x)
            feats.append(f)
            feats_U = feats_U + f
        feats_S = self.gap(feats_U)
        feats_Z = self.fc(feats_S)
        attention_vectors = torch.stack([fc(feats_Z) for fc in self.fcs], dim=1)  # (b, M, c, 1, 1)
        attention_vectors = self.softmax(attention_vectors)
        feats_V = torch.zeros([b, c, h, w])
        for i in range(self.M):
            feats_V = feats_V + feats[i] * attention_vectors[:, i]
        return feats_V


class GCBlog(nn.Module):
    """Global context block whose 'avg' context is `F.avg_pool2d(x, x.size()[2:])`, with add and mul fusion."""

    def __init__(self, inplanes: int, ratio: float = 0.25) -> None:
        super().__init__()
        planes = int(inplanes * ratio)
        self.conv_mask = nn.Conv2d(inplanes, 1, kernel_size=1)
        self.softmax = nn.Softmax(dim=2)
        self.channel_add_conv = nn.Sequential(
            nn.Conv2d(inplanes, planes, kernel_size=1), nn.LayerNorm([planes, 1, 1]), nn.ReLU(inplace=True),
            nn.Conv2d(planes, inplanes, kernel_size=1))
        self.channel_mul_conv = nn.Sequential(
            nn.Conv2d(inplanes, planes, kernel_size=1), nn.LayerNorm([planes, 1, 1]), nn.ReLU(inplace=True),
            nn.Conv2d(planes, inplanes, kernel_size=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channel, height, width = x.size()
        input_x = x.view(batch, channel, height * width).unsqueeze(1)
        context_mask = self.softmax(self.conv_mask(x).view(batch, 1, height * width)).unsqueeze(-1)
        att_context = torch.matmul(input_x, context_mask).view(batch, channel, 1, 1)
        avg_context = F.avg_pool2d(x, x.size()[2:])
        out = x * torch.sigmoid(self.channel_mul_conv(avg_context))
        return out + self.channel_add_conv(att_context)


class ChannelGateBlog(nn.Module):
    def __init__(self, gate_channels: int, reduction_ratio: int = 16) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(gate_channels, gate_channels // reduction_ratio),
                                 nn.ReLU(), nn.Linear(gate_channels // reduction_ratio, gate_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg_pool = F.avg_pool2d(x, (x.size(2), x.size(3)), stride=(x.size(2), x.size(3)))
        max_pool = F.max_pool2d(x, (x.size(2), x.size(3)), stride=(x.size(2), x.size(3)))
        channel_att_sum = self.mlp(avg_pool) + self.mlp(max_pool)
        scale = torch.sigmoid(channel_att_sum).unsqueeze(2).unsqueeze(3).expand_as(x)
        return x * scale


class CBAMBlog(nn.Module):
    """CBAM: channel gate with kernels from x.size(), spatial gate over cat([max, mean])."""

    def __init__(self, gate_channels: int, reduction_ratio: int = 16) -> None:
        super().__init__()
        self.ChannelGate = ChannelGateBlog(gate_channels, reduction_ratio)
        self.spatial = nn.Sequential(nn.Conv2d(2, 1, 7, padding=3, bias=False), nn.BatchNorm2d(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_out = self.ChannelGate(x)
        compressed = torch.cat((torch.max(x_out, 1)[0].unsqueeze(1), torch.mean(x_out, 1).unsqueeze(1)), dim=1)
        return x_out * torch.sigmoid(self.spatial(compressed))

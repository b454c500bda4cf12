"""SAGAN self-attention (`Self_Attn`).

Paper: Zhang et al., "Self-Attention Generative Adversarial Networks", ICML 2019,
arXiv:1805.08318. Structure and `state_dict` layout match heykeetae/Self-Attention-GAN
`sagan_models.py` (`Self_Attn`): `gamma` (an `nn.Parameter`, zero-initialised),
`query_conv`, `key_conv` (1x1, C -> C/8), `value_conv` (1x1, C -> C).

The official code names the spatial sizes `width, height = x.size()[2:]`; they are only
names (N = H*W positions), kept as in the original.

Deploy twin: `SelfAttentionDeploy`, same ``state_dict``, export-friendly forward.

Reshapes use `flatten` and `reshape_as`, so N, H, W stay dynamic; `gamma` stays a
parameter (an initializer in the graph, not a folded constant). The energies are
unscaled (~9e4 at input scale ~100 -> inf in fp16): keep MatMul/Softmax in fp32.
"""

from __future__ import annotations

import torch
from torch import nn

from attndeploy.errors import require, require_divisible


class SelfAttention(nn.Module):
    """y = gamma * (value @ softmax(query^T key)^T) + x over all H*W positions.

    Args:
        channels: input (and output) channels C; >= 8 and divisible by 8.
        return_attention: also return the (N, HW, HW) attention map, as the official code does.
    """

    def __init__(self, channels: int, return_attention: bool = False) -> None:
        super().__init__()
        require(channels >= 8, "channels must be at least 8 (query/key use C // 8)", ">= 8", channels)
        require_divisible("channels", channels, 8, "the query/key reduction")
        self.channels = channels
        self.return_attention = return_attention
        self.chanel_in = channels  # the official attribute name (sic)

        self.query_conv = nn.Conv2d(channels, channels // 8, kernel_size=1)
        self.key_conv = nn.Conv2d(channels, channels // 8, kernel_size=1)
        self.value_conv = nn.Conv2d(channels, channels, kernel_size=1)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """x: (N, C, H, W) -> y (N, C, H, W), plus attention (N, HW, HW) if `return_attention`."""
        m_batchsize, C, width, height = x.size()
        proj_query = self.query_conv(x).view(m_batchsize, -1, width * height).permute(0, 2, 1)  # (N, HW, C/8)
        proj_key = self.key_conv(x).view(m_batchsize, -1, width * height)  # (N, C/8, HW)
        energy = torch.bmm(proj_query, proj_key)  # (N, HW, HW)
        attention = self.softmax(energy)
        proj_value = self.value_conv(x).view(m_batchsize, -1, width * height)  # (N, C, HW)
        out = torch.bmm(proj_value, attention.permute(0, 2, 1))
        out = out.view(m_batchsize, C, width, height)
        out = self.gamma * out + x
        if self.return_attention:
            return out, attention
        return out


class SelfAttentionDeploy(SelfAttention):
    """`SelfAttention` with an export-safe forward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """x: (N, C, H, W) -> y (N, C, H, W), plus attention (N, HW, HW) if `return_attention`."""
        query = self.query_conv(x).flatten(2).transpose(1, 2)  # (N, HW, C/8)
        key = self.key_conv(x).flatten(2)  # (N, C/8, HW)
        attention = torch.softmax(torch.matmul(query, key), dim=-1)  # (N, HW, HW)
        value = self.value_conv(x).flatten(2)  # (N, C, HW)
        out = torch.matmul(value, attention.transpose(1, 2)).reshape_as(x)
        out = self.gamma * out + x
        if self.return_attention:
            return out, attention
        return out

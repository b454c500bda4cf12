"""Export-friendly SAGAN self-attention (same `state_dict` as `attndeploy.layers.selfattn`).

Reshapes use `flatten` and `reshape_as`, so N, H, W stay dynamic; `gamma` stays a
parameter (an initializer in the graph, not a folded constant). The energies are
unscaled (~9e4 at input scale ~100 -> inf in fp16): keep MatMul/Softmax in fp32.
"""

from __future__ import annotations

import torch

from attndeploy.layers.selfattn import SelfAttention


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

"""Mixed Local Channel Attention (MLCA).

Paper: Wan et al., "Mixed local channel attention for object detection", Engineering
Applications of Artificial Intelligence 123 (2023), doi:10.1016/j.engappai.2023.106442
(no arXiv id). Official code: https://github.com/wandahangFY/MLCA (`MLCA.py`); this class
matches its structure and `state_dict` (`conv.weight`, `conv_local.weight`).

The official code pools with `nn.AdaptiveAvgPool2d(local_size)` and pools the attention
back up with `F.adaptive_avg_pool2d(..., [H, W])`. Both are export hazards kept here: the
TorchScript exporter rejects them at dynamic sizes, and the dynamo exporter bakes the
sample's H, W. `MLCADeploy` (below) removes them.

Deploy twin: `MLCADeploy`, same ``state_dict``; the adaptive pools as exact in-graph
averaging matrices.

`adaptive_avg_pool2d_exact` builds `P_h (o×H)` and `P_w (o×W)` from the runtime sizes, so
the s×s pool, and the pool back up to (H, W), stay exact and dynamic in both exporters.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from attndeploy.errors import require
from attndeploy.families.eca import (
    eca_kernel_size,  # the official MLCA's int(|log2 C + b| / gamma): equal for b >= 0
)
from attndeploy.ops.pooling import adaptive_avg_pool2d_exact


class MLCA(nn.Module):
    """Mixed local channel attention: local (s×s bins) and global channel attention, mixed.

    Args:
        channels: C, the input channels.
        local_size: s, the side of the local pooling grid.
        gamma, b: ECA's kernel-size rule, `k = odd(int(|log2(C) + b| / gamma))`.
        local_weight: w, the weight of the local attention in `w·local + (1-w)·global`.
    """

    def __init__(self, channels: int, local_size: int = 5, gamma: float = 2, b: float = 1,
                 local_weight: float = 0.5) -> None:
        super().__init__()
        require(isinstance(channels, int) and channels >= 1, "mlca channels must be a positive int",
                ">= 1", channels)
        require(isinstance(local_size, int) and local_size >= 1, "mlca local_size must be a positive int",
                ">= 1", local_size)
        require(gamma > 0, "mlca gamma must be positive", "> 0", gamma)
        k = eca_kernel_size(channels, gamma, b)
        self.channels = channels
        self.local_size = local_size
        self.gamma = gamma
        self.b = b
        self.local_weight = local_weight

        self.conv = nn.Conv1d(1, 1, kernel_size=k, padding=(k - 1) // 2, bias=False)
        self.conv_local = nn.Conv1d(1, 1, kernel_size=k, padding=(k - 1) // 2, bias=False)
        self.local_arv_pool = nn.AdaptiveAvgPool2d(local_size)
        self.global_arv_pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, C, H, W) -> (N, C, H, W)."""
        s = self.local_size
        local_arv = self.local_arv_pool(x)  # (N, C, s, s)
        global_arv = self.global_arv_pool(local_arv)  # (N, C, 1, 1): the mean of the s×s bins
        b, c, m, n = x.shape

        # (N, C, s, s) -> (N, C, s*s) -> (N, s*s, C) -> (N, 1, s*s*C): the sequence runs over (bin, channel)
        temp_local = local_arv.view(b, c, -1).transpose(-1, -2).reshape(b, 1, -1)
        temp_global = global_arv.view(b, c, -1).transpose(-1, -2)  # (N, 1, C)
        y_local = self.conv_local(temp_local)
        y_global = self.conv(temp_global)

        y_local_transpose = y_local.reshape(b, s * s, c).transpose(-1, -2).view(b, c, s, s)
        y_global_transpose = y_global.view(b, -1).unsqueeze(-1).unsqueeze(-1)  # (N, C, 1, 1)
        att_local = y_local_transpose.sigmoid()
        att_global = F.adaptive_avg_pool2d(y_global_transpose.sigmoid(), (s, s))
        att_all = F.adaptive_avg_pool2d(att_global * (1 - self.local_weight) + att_local * self.local_weight,
                                        (m, n))
        return x * att_all


class MLCADeploy(MLCA):
    """`MLCA` with the same weights; no adaptive pooling ops, no size-dependent reshapes."""

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, C, H, W) -> (N, C, H, W)."""
        s, c, w = self.local_size, self.channels, self.local_weight
        local_arv = adaptive_avg_pool2d_exact(x, s)  # (N, C, s, s)
        global_arv = local_arv.mean((2, 3))  # (N, C): the mean of the s×s bins, as the official code
        y_local = self.conv_local(local_arv.flatten(2).transpose(1, 2).flatten(1).unsqueeze(1))  # (N, 1, s*s*C)
        y_global = self.conv(global_arv.unsqueeze(1))  # (N, 1, C)
        att_local = y_local.reshape(-1, s * s, c).transpose(1, 2).reshape(-1, c, s, s).sigmoid()
        att_global = y_global.reshape(-1, c, 1, 1).sigmoid()  # pooling 1×1 up to s×s is a broadcast
        att = att_global * (1 - w) + att_local * w  # (N, C, s, s)
        return x * adaptive_avg_pool2d_exact(att, (x.shape[2], x.shape[3]))

"""Export-safe MLCA: the adaptive pools as exact in-graph averaging matrices.

`adaptive_avg_pool2d_exact` builds `P_h (o×H)` and `P_w (o×W)` from the runtime sizes, so
the s×s pool, and the pool back up to (H, W), stay exact and dynamic in both exporters.
"""

from __future__ import annotations

from torch import Tensor

from attndeploy.deploy.pooling import adaptive_avg_pool2d_exact
from attndeploy.layers.mlca import MLCA


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

"""Export-friendly Selective Kernel (same `state_dict` as `attndeploy.layers.sk`).

GAP is a `mean` over (H, W); the branch logits are split with `unflatten`, so no size is
read from the input and N, H, W stay dynamic in both exporters.
"""

from __future__ import annotations

import torch

from attndeploy.layers.sk import SelectiveKernel


class SelectiveKernelDeploy(SelectiveKernel):
    """`SelectiveKernel` with an export-safe forward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) -> (N, C_out, H', W')."""
        output = [conv(x) for conv in self.conv]  # M x (N, C_out, H', W')
        u = output[0]
        for branch in output[1:]:
            u = u + branch
        s = u.mean((2, 3), keepdim=True)  # (N, C_out, 1, 1)
        logits = self.fc2(self.fc1(s)).unflatten(1, (self.num_branches, self.out_channels))
        a = torch.softmax(logits, dim=1)  # (N, M, C_out, 1, 1), across branches
        v = output[0] * a[:, 0]
        for i in range(1, self.num_branches):
            v = v + output[i] * a[:, i]
        return v

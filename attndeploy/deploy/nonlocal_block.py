"""Export-friendly non-local block (same `state_dict` as `attndeploy.layers.nonlocal_block`).

Reshapes use `flatten` and sizes read as graph shapes, so N, H, W stay dynamic. With
`sub_sample`, MaxPool2d(2) floors odd H, W exactly as in eager mode. The (HW x HW') energy
is unscaled: for fp16 engines keep MatMul/Softmax in fp32.
"""

from __future__ import annotations

import torch

from attndeploy.layers.nonlocal_block import NonLocalBlock


class NonLocalBlockDeploy(NonLocalBlock):
    """`NonLocalBlock` with an export-safe forward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) -> (N, C, H, W)."""
        g_x = self.g(x).flatten(2).transpose(1, 2)  # (N, HW', Ci)
        theta_x = self.theta(x).flatten(2).transpose(1, 2)  # (N, HW, Ci)
        phi_x = self.phi(x).flatten(2)  # (N, Ci, HW')
        f = torch.softmax(torch.matmul(theta_x, phi_x), dim=-1)  # (N, HW, HW')
        y = torch.matmul(f, g_x).transpose(1, 2)  # (N, Ci, HW)
        y = y.reshape(x.shape[0], -1, x.shape[2], x.shape[3])  # (N, Ci, H, W)
        return self.W(y) + x

"""Fresh, non-zero weights for verification.

Official inits zero some tails (GCNet's last conv, SAGAN's gamma, Non-local's BN):
a parity check on such a module cannot see a broken branch. `randomize_` fills every
parameter and normalisation statistic with random non-zero values.
"""

from __future__ import annotations

import torch
from torch import nn

_NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


@torch.no_grad()
def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Fill every floating parameter and buffer of `model` in place; returns `model`.

    Norm weights and running variances get U(0.5, 1.5); biases and running means
    U(-0.1, 0.1); conv/linear weights N(0, 1/fan_in); other scalars (SAGAN's gamma,
    ACmix's rates) U(0.25, 0.75).
    """
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        is_norm = isinstance(module, _NORMS)
        tensors = [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]
        for name, t in tensors:
            if not t.is_floating_point():
                continue
            u = torch.rand(t.shape, generator=gen, dtype=torch.float64)
            if name in ("running_var",) or (is_norm and name == "weight"):
                value = 0.5 + u
            elif name in ("bias", "running_mean"):
                value = 0.2 * u - 0.1
            elif t.dim() >= 2:
                value = torch.randn(t.shape, generator=gen, dtype=torch.float64) / max(t[0].numel(), 1) ** 0.5
            else:
                value = 0.25 + 0.5 * u
            t.copy_(value.to(t.dtype))
    return model

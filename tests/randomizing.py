"""Random, non-zero weights for reference/twin tests: official inits zero or one-hot some
layers, which would hide a wrong twin behind a zero branch."""

from __future__ import annotations

import torch
from torch import nn


def _random_bn_statistics(m: nn.Module, g: torch.Generator) -> None:
    for mod in m.modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm) and mod.running_mean is not None:
            mod.running_mean.copy_(torch.randn(mod.running_mean.shape, generator=g) * 0.2)
            mod.running_var.copy_(torch.rand(mod.running_var.shape, generator=g) + 0.5)


def randomize_signed(m: nn.Module, seed: int = 0) -> nn.Module:
    """Every parameter |w| in [0.2, 1.2)/sqrt(fan_in) with a random sign, BN statistics random; eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            fan_in = p[0].numel() if p.dim() > 1 else 1
            p.copy_((torch.rand(p.shape, generator=g) + 0.2) * torch.sign(torch.randn(p.shape, generator=g))
                    / fan_in ** 0.5)
        _random_bn_statistics(m, g)
    return m.eval()


def randomize_gaussian(m: nn.Module, seed: int = 0, scale: float = 0.5) -> nn.Module:
    """Every parameter N(0.1, scale²), BN statistics random (running_var positive); eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale + 0.1)
        _random_bn_statistics(m, g)
    return m.eval()

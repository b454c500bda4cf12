"""The memory-traffic floor: the least time a module can take if it only moved its bytes.

A module must read its input and weights and write its output at least once:
`bytes = input + output + weights` (fp32, parameters and buffers of the deploy twin, which
holds the same `state_dict` as the reference). Divided by the copy bandwidth measured in
the same run, that is a time no backend can beat; a backend's time divided by it
(`x_floor`) says how far from memory-bound it is (1.0 would be a perfect streaming
kernel; attention blocks that re-read their input several times sit well above).

Copy bandwidth: a `torch` copy of `copy_mib` MiB float32 (large enough to leave the
caches), with the bench's thread count, counted as read + write bytes
(2 x size / median time). Small inputs fit in cache and can beat it: the floor is a
DRAM floor.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import torch


@dataclass(frozen=True)
class FloorBytes:
    """Bytes a module must move at least once for one call."""

    input: int
    output: int
    weights: int

    @property
    def total(self) -> int:
        return self.input + self.output + self.weights

    def seconds(self, bandwidth_bytes_per_s: float) -> float:
        """The floor time in seconds at `bandwidth_bytes_per_s`."""
        return self.total / bandwidth_bytes_per_s

    def to_dict(self) -> dict[str, int]:
        return {**asdict(self), "total": self.total}


def floor_bytes(model: torch.nn.Module, x: torch.Tensor, outputs: list[np.ndarray]) -> FloorBytes:
    """`x`: the input; `outputs`: the module's outputs at `x`; weights: every parameter and buffer."""
    tensors = [*model.parameters(), *model.buffers()]
    weights = sum(t.numel() * t.element_size() for t in tensors)
    return FloorBytes(x.numel() * x.element_size(), sum(int(o.nbytes) for o in outputs), weights)


def copy_bandwidth(copy_mib: int = 128, repeats: int = 7) -> float:
    """Bytes per second (read + write) of a `copy_mib` MiB float32 tensor copy, median of `repeats`."""
    import torch

    n = copy_mib * (1 << 20) // 4
    src = torch.rand(n, dtype=torch.float32)
    dst = torch.empty_like(src)
    dst.copy_(src)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        dst.copy_(src)
        times.append(time.perf_counter() - t0)
    times.sort()
    return 2 * src.numel() * src.element_size() / times[len(times) // 2]

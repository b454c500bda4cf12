"""Exact, export-friendly adaptive pooling for deploy twins and export-time rewrites.

`F.adaptive_avg_pool2d` / `F.adaptive_max_pool2d` with an output size other than 1 do not
export well: the TorchScript exporter rejects non-divisible and upsampling sizes, and the
dynamo exporter bakes the sample's input size into the graph. Here the bins are built in
the graph from the runtime sizes, so H and W stay dynamic in both exporters.

Bin `i` of `o` bins over a length-`n` axis is `[floor(i*n/o), ceil((i+1)*n/o))`, the rule
of `F.adaptive_avg_pool2d` for downsampling and upsampling alike. Index `j` lies in bin `i`
iff `i*n < (j+1)*o` and `j*o < (i+1)*n`: integer comparisons, no division, exact.
"""

from __future__ import annotations

from typing import Optional, Union

import torch
from torch import Tensor

OutputSize = Union[int, None, tuple[Optional[int], Optional[int]], list[Optional[int]]]


def _pair(output_size: OutputSize) -> tuple[Optional[int], Optional[int]]:
    if isinstance(output_size, (tuple, list)):
        oh, ow = output_size
        return oh, ow
    return output_size, output_size


def bin_mask(out_size: int, in_size: int, device: torch.device) -> Tensor:
    """Bool (out_size, in_size): `[i, j]` is True iff input index j lies in adaptive bin i.

    Sizes may be Python ints or traced/symbolic sizes (`x.shape[2]` while exporting);
    indices are int64 on `device`, so the comparisons are exact for any dtype of `x`.
    """
    i = torch.arange(out_size, device=device).unsqueeze(1)
    j = torch.arange(in_size, device=device).unsqueeze(0)
    return torch.logical_and(i * in_size < (j + 1) * out_size, j * out_size < (i + 1) * in_size)


def avg_pool_matrix(out_size: int, in_size: int, like: Tensor) -> Tensor:
    """(out_size, in_size) averaging matrix in `like`'s dtype and device; rows sum to 1."""
    mask = bin_mask(out_size, in_size, like.device).to(like.dtype)
    return mask / mask.sum(1, keepdim=True)


def adaptive_avg_pool2d_exact(x: Tensor, output_size: OutputSize) -> Tensor:
    """`F.adaptive_avg_pool2d(x, output_size)` as `P_h @ x @ P_wᵀ`, exportable with dynamic H, W.

    x: (N, C, H, W) -> (N, C, oh, ow). `output_size` is an int or (oh, ow); None keeps that
    dim. A literal int 1 is a plain mean; sizes read from `x.shape` while exporting are
    Tensors (TorchScript tracer) or SymInts (dynamo), never baked through that branch.
    """
    oh, ow = _pair(output_size)
    if ow is not None:
        if isinstance(ow, int) and ow == 1:
            x = x.mean(3, keepdim=True)
        else:
            x = torch.matmul(x, avg_pool_matrix(ow, x.shape[3], x).transpose(0, 1))
    if oh is not None:
        if isinstance(oh, int) and oh == 1:
            x = x.mean(2, keepdim=True)
        else:
            x = torch.matmul(avg_pool_matrix(oh, x.shape[2], x), x)
    return x


def adaptive_max_pool2d_exact(x: Tensor, output_size: OutputSize) -> Tensor:
    """`F.adaptive_max_pool2d(x, output_size)` (values only) as masked maxima, dynamic H, W.

    x: (N, C, H, W) -> (N, C, oh, ow); None keeps that dim, a size of 1 is a plain `amax`.
    The max over a rectangular bin is taken per axis: W first, then H. Memory is
    N·C·H·ow·W (then N·C·oh·H·ow) for the masked copies.
    """
    oh, ow = _pair(output_size)
    if ow is not None:
        if isinstance(ow, int) and ow == 1:
            x = x.amax(3, keepdim=True)
        else:
            keep = bin_mask(ow, x.shape[3], x.device)  # (ow, W)
            x = x.unsqueeze(3).masked_fill(~keep, float("-inf")).amax(4)
    if oh is not None:
        if isinstance(oh, int) and oh == 1:
            x = x.amax(2, keepdim=True)
        else:
            keep = bin_mask(oh, x.shape[2], x.device).unsqueeze(2)  # (oh, H, 1)
            x = x.unsqueeze(2).masked_fill(~keep, float("-inf")).amax(3)
    return x

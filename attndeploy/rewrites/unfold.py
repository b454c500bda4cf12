"""`F.unfold` / `nn.Unfold` (im2col) as shifted strided slices of the zero-padded input.

The TorchScript exporter writes im2col as a Gather-based index computation (heavy, slow
in TensorRT) and the dynamo exporter's decomposition bakes the sample's H, W. Here kernel
row i reads rows ``i·dh, i·dh + sh, ...`` of the zero-padded input, then kernel column j
reads columns ``j·dw, j·dw + sw, ...`` of that: kh + kw slices (not kh·kw), with static
starts, steps and *negative* ends, so the number of blocks ``L = oh·ow`` follows the
runtime H, W with no shape arithmetic in the graph:

    oh = (H + 2·ph - dh·(kh - 1) - 1) // sh + 1,  ow likewise.

Output layout equals torch's: (N, C·kh·kw, L), channel index ``c·kh·kw + i·kw + j``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from attndeploy.rewrites.dims import Caller
from attndeploy.rewrites.log import RewriteLog


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        return int(value[0]), int(value[1])
    return int(value), int(value)


def _static(*values: Any) -> bool:
    """Every argument is a plain int or a pair of plain ints (the slice plan is static)."""
    flat = [v for value in values for v in (value if isinstance(value, (tuple, list)) else (value,))]
    return all(isinstance(v, int) and not isinstance(v, (bool, torch.SymInt)) for v in flat)


def unfold_exact(x: Tensor, kernel_size: Any, dilation: Any = 1, padding: Any = 0, stride: Any = 1) -> Tensor:
    """`F.unfold(x, kernel_size, dilation, padding, stride)` without im2col.

    x: (N, C, H, W) or (C, H, W) -> (N, C·kh·kw, L) or (C·kh·kw, L), L = oh·ow.
    Bit-exact: only slicing, zero padding and reshapes.
    """
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = (_pair(v) for v in (kernel_size, dilation, padding, stride))
    unbatched = x.dim() == 3
    if unbatched:
        x = x.unsqueeze(0)
    if ph or pw:
        x = F.pad(x, (pw, pw, ph, ph))
    span_h, span_w = dh * (kh - 1), dw * (kw - 1)
    # rows first: kh slices (N, C, oh, Wp) -> (N, C, kh, oh, Wp)
    rows = [x[:, :, i * dh:(i * dh - span_h) or None:sh, :] for i in range(kh)]
    x = (torch.cat(rows, 2) if kh > 1 else rows[0]).unflatten(2, (kh, -1))
    # then columns: kw slices (N, C, kh, oh, ow) -> (N, C, kh, oh, kw, ow)
    cols = [x[..., j * dw:(j * dw - span_w) or None:sw] for j in range(kw)]
    x = (torch.cat(cols, -1) if kw > 1 else cols[0]).unflatten(-1, (kw, -1))
    out = x.permute(0, 1, 2, 4, 3, 5).flatten(1, 3).flatten(2, 3)  # (N, C·kh·kw, L), L = oh·ow
    return out.squeeze(0) if unbatched else out


def unfold(original: Callable[..., Any], log: RewriteLog, caller: Caller, input: Tensor, kernel_size: Any,
           dilation: Any = 1, padding: Any = 0, stride: Any = 1) -> Tensor:
    """The `F.unfold` patch: 3-D/4-D inputs with int (or int-pair) arguments -> `unfold_exact`."""
    if not isinstance(input, Tensor) or input.dim() not in (3, 4) or not _static(kernel_size, dilation, padding,
                                                                                  stride):
        return original(input, kernel_size, dilation, padding, stride)
    log.record("unfold", "slices", caller.site)
    return unfold_exact(input, kernel_size, dilation, padding, stride)

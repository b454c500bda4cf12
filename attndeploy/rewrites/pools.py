"""Adaptive and whole-input pooling routed to exact forms that keep H and W dynamic.

`F.adaptive_avg_pool2d` / `F.adaptive_max_pool2d` (and so `nn.AdaptiveAvgPool2d` /
`nn.AdaptiveMaxPool2d`, which call them at run time), per axis:

- a literal 1 -> a reduction (`mean` / `amax`);
- the input's own dimension (``x.size(2)`` in forward), or None -> identity;
- any other size, down or up, divisible or not, literal or read from another tensor's
  shape -> `attndeploy.ops.pooling` (averaging matrices / bin-wise max built from the
  runtime sizes).

Both sizes literal 1 (global pooling) is left to torch: it exports as
`GlobalAveragePool` / `GlobalMaxPool` in both exporters.

`F.avg_pool2d` / `F.max_pool2d` whose kernel is the whole input (``kernel_size=x.size()[2:]``,
CBAM's official channel gate) -> `mean` / `amax` over (H, W); any other kernel is left to torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from attndeploy.ops.pooling import (
    adaptive_avg_pool2d_exact,
    adaptive_max_pool2d_exact,
)
from attndeploy.rewrites.dims import Caller, is_literal_one, same_dim
from attndeploy.rewrites.log import RewriteLog


def _pair(size: Any) -> tuple[Any, Any]:
    if isinstance(size, (tuple, list)):
        if len(size) != 2:
            return size, size  # let torch raise its own error
        return size[0], size[1]
    return size, size


def _plan(x: Tensor, output_size: Any) -> tuple[Any, Any, str] | None:
    """Effective (oh, ow) for the exact pools (None = keep the axis) and how, or None for torch."""
    oh, ow = _pair(output_size)
    if isinstance(oh, (tuple, list)) or x.dim() not in (3, 4):
        return None
    if (is_literal_one(oh) and is_literal_one(ow)) or (oh is None and ow is None):
        return None  # global pooling or a no-op: torch exports these exactly
    hows: list[str] = []
    planned: list[Any] = []
    for size, axis in ((oh, -2), (ow, -1)):
        if size is None or same_dim(size, x, axis):
            planned.append(None)
            hows.append("identity")
        elif is_literal_one(size):
            planned.append(1)
            hows.append("reduction")
        else:
            planned.append(size)
            hows.append("matrix")
    return planned[0], planned[1], "+".join(dict.fromkeys(hows))


def _contiguous(y: Tensor) -> Tensor:
    """`y.contiguous()` only when needed: on a contiguous tensor it returns `y` itself, which
    makes the TorchScript tracer rebind `y` to a new value (``x.size()`` no longer matches it)."""
    return y if y.is_contiguous() else y.contiguous()


def _pool(exact: Callable[[Tensor, Any], Tensor], reduce: Callable[..., Tensor], kind: str, log: RewriteLog,
          caller: Caller, x: Tensor, output_size: Any) -> Tensor | None:
    """x (N, C, H, W) or (C, H, W) pooled per `_plan`; None if torch's own op should run.

    The H axis is pooled as the W axis of ``x.transpose(-1, -2)``: `torch.matmul(P_h, x)`
    (2-D @ 4-D) makes the dynamo exporter derive batch-dependent sizes (``N * (25 // N)``)
    that break a later ``reshape(N, 1, -1)`` at other batch sizes; 4-D @ 2-D does not.
    """
    plan = _plan(x, output_size) if isinstance(x, Tensor) else None
    if plan is None:
        return None
    oh, ow, how = plan
    unbatched = x.dim() == 3
    y = x.unsqueeze(0) if unbatched else x
    if is_literal_one(ow):
        y = reduce(y, -1, keepdim=True)
    elif ow is not None:
        y = exact(_contiguous(y), (None, ow))
    if is_literal_one(oh):
        y = reduce(y, -2, keepdim=True)
    elif oh is not None:
        y = exact(_contiguous(y.transpose(-1, -2)), (None, oh)).transpose(-1, -2)
    y = _contiguous(y)  # torch's pools return contiguous tensors; later views rely on it
    log.record(kind, how, caller.site)
    return y.squeeze(0) if unbatched else y


def adaptive_avg_pool2d(original: Callable[..., Any], log: RewriteLog, caller: Caller, input: Tensor,
                        output_size: Any) -> Tensor:
    """`F.adaptive_avg_pool2d(input, output_size)`: input (N, C, H, W) or (C, H, W) -> (..., oh, ow)."""
    y = _pool(adaptive_avg_pool2d_exact, torch.mean, "adaptive_avg_pool2d", log, caller, input, output_size)
    return original(input, output_size) if y is None else y


def adaptive_max_pool2d(original: Callable[..., Any], log: RewriteLog, caller: Caller, input: Tensor,
                        output_size: Any, return_indices: bool = False) -> Any:
    """`F.adaptive_max_pool2d` (values only; with `return_indices=True` torch's own op runs)."""
    if return_indices:
        return original(input, output_size, return_indices)
    y = _pool(adaptive_max_pool2d_exact, torch.amax, "adaptive_max_pool2d", log, caller, input, output_size)
    return original(input, output_size) if y is None else y


def _is_zero(value: Any) -> bool:
    return all(isinstance(v, int) and v == 0 for v in (value if isinstance(value, (tuple, list)) else (value,)))


def _is_one(value: Any) -> bool:
    return all(isinstance(v, int) and v == 1 for v in (value if isinstance(value, (tuple, list)) else (value,)))


def covers_input(x: Tensor, kernel_size: Any) -> bool:
    """True iff the (kh, kw) window is `x`'s whole (H, W) at every input shape."""
    if not isinstance(x, Tensor) or x.dim() not in (3, 4):
        return False
    kh, kw = _pair(kernel_size)
    return same_dim(kh, x, -2) and same_dim(kw, x, -1)


def avg_pool2d(original: Callable[..., Any], log: RewriteLog, caller: Caller, input: Tensor, kernel_size: Any,
               stride: Any = None, padding: Any = 0, ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: Any = None) -> Tensor:
    """`F.avg_pool2d`; a whole-input window -> `mean` over (H, W): (N, C, H, W) -> (N, C, 1, 1).

    With no padding, a window as large as the input gives one output for any stride and
    either `ceil_mode`, so the stride is irrelevant.
    """
    if divisor_override is None and _is_zero(padding) and covers_input(input, kernel_size):
        log.record("avg_pool2d", "whole-input mean", caller.site)
        return input.mean((-2, -1), keepdim=True)
    return original(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)


def max_pool2d(original: Callable[..., Any], log: RewriteLog, caller: Caller, input: Tensor, kernel_size: Any,
               stride: Any = None, padding: Any = 0, dilation: Any = 1, ceil_mode: bool = False,
               return_indices: bool = False) -> Any:
    """`F.max_pool2d`; a whole-input window (values only) -> `amax` over (H, W): (N, C, 1, 1)."""
    if not return_indices and _is_zero(padding) and _is_one(dilation) and covers_input(input, kernel_size):
        log.record("max_pool2d", "whole-input amax", caller.site)
        return input.amax((-2, -1), keepdim=True)
    return original(input, kernel_size, stride, padding, dilation, ceil_mode=ceil_mode,
                    return_indices=return_indices)

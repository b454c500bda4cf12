"""Tensor factories pinned to the example input's dtype and device while exporting.

- `torch.linspace(start, end, steps)` -> an `arange`-based formula in the example's dtype
  on its device: the TorchScript exporter writes `linspace` through float64 (no ORT
  kernel for what follows, no float64 in TensorRT) and the dynamo exporter bakes `steps`
  read from ``x.size()``. Torch's own two-sided rule is kept,
  ``v[i] = start + step·i`` for ``i < max(steps // 2, 1)``, else ``end - step·(steps - 1 - i)``
  with ``step = (end - start) / max(steps - 1, 1)``: both ends exact, ``steps == 1`` gives
  ``[start]``; elsewhere within 1 ulp of torch's vectorised kernel.
- `torch.arange`, `torch.zeros`, `torch.ones` without `device` (or with a fixed device other
  than the example's) -> the example's device; without `dtype`, a floating result ->
  the example's floating dtype (integer `arange` stays int64).

Calls from torch itself, from the ONNX stack and from constructors (``__init__``, e.g. a
deploy twin built while exporting) are passed through untouched (see
`attndeploy.rewrites.dims.Caller.internal`).
"""

from __future__ import annotations

from collections.abc import Callable
from numbers import Number
from typing import Any

import torch
from torch import Tensor

from attndeploy.rewrites.dims import Caller
from attndeploy.rewrites.log import RewriteLog


def _floating(dtype: torch.dtype) -> bool:
    return dtype.is_floating_point


def _pin(log: RewriteLog, kwargs: dict[str, Any], floating_result: bool) -> list[str]:
    """Set `device` (and, for a floating result, `dtype`) in `kwargs`; returns what changed."""
    changed = []
    device = kwargs.get("device")
    if device is None or torch.device(device) != log.device:
        changed.append(f"device {device} -> {log.device}")
        kwargs["device"] = log.device
    if kwargs.get("dtype") is None and floating_result and _floating(log.dtype):
        if log.dtype != torch.get_default_dtype():
            changed.append(f"dtype -> {log.dtype}")
        kwargs["dtype"] = log.dtype
    return changed


def linspace_exact(start: float, end: float, steps: Any, dtype: torch.dtype, device: torch.device) -> Tensor:
    """`torch.linspace(start, end, steps)` from `arange`: (steps,), dtype and device as given.

    `steps` may be an int, a traced 0-dim Tensor (TorchScript) or a SymInt (dynamo): the
    count enters the graph from `steps` itself, so it stays dynamic.
    """
    i = torch.arange(steps, device=device)  # int64 indices: exact
    t = i.to(dtype)
    if isinstance(steps, Tensor):
        count = steps.to(dtype=dtype, device=device)
        step = (end - start) / torch.clamp(count - 1, min=1)
        half = torch.clamp(torch.div(count, 2, rounding_mode="floor"), min=1)
        return torch.where(t < half, start + step * t, end - step * ((count - 1) - t))
    step_ = (end - start) / torch.sym_max(steps - 1, 1)
    return torch.where(i < torch.sym_max(steps // 2, 1), start + step_ * t, end - step_ * ((steps - 1) - t))


def linspace(original: Callable[..., Any], log: RewriteLog, caller: Caller, *args: Any, **kwargs: Any) -> Tensor:
    """The `torch.linspace` patch (see the module docstring)."""
    names = ("start", "end", "steps")
    bound = {**dict(zip(names, args)), **{n: kwargs[n] for n in names if n in kwargs}}
    rest = {k for k in kwargs if k not in (*names, "dtype", "device", "requires_grad")}
    if (caller.internal or rest or len(args) > 3 or set(bound) != set(names)
            or not all(isinstance(bound[k], Number) and not isinstance(bound[k], bool) for k in ("start", "end"))
            or kwargs.get("dtype") not in (None, torch.float16, torch.bfloat16, torch.float32, torch.float64)):
        return original(*args, **kwargs)
    options = {k: kwargs.get(k) for k in ("dtype", "device")}
    _pin(log, options, floating_result=True)
    dtype = options["dtype"] if options["dtype"] is not None else torch.get_default_dtype()
    out = linspace_exact(float(bound["start"]), float(bound["end"]), bound["steps"], dtype, log.device)
    log.record("linspace", "arange", caller.site)
    return out.requires_grad_() if kwargs.get("requires_grad") else out


def _factory(kind: str, floating: Callable[[tuple[Any, ...], dict[str, Any]], bool]) -> Callable[..., Any]:
    def patched(original: Callable[..., Any], log: RewriteLog, caller: Caller, *args: Any, **kwargs: Any) -> Tensor:
        if caller.internal or kwargs.get("out") is not None or kwargs.get("layout") not in (None, torch.strided):
            return original(*args, **kwargs)
        changed = _pin(log, kwargs, floating(args, kwargs))
        if changed:
            log.record(kind, "+".join(c.split(" ")[0] for c in changed), caller.site)
        return original(*args, **kwargs)

    patched.__name__ = kind
    patched.__doc__ = f"The `torch.{kind}` patch: pins device (and a floating dtype) to the example's."
    return patched


def _arange_floating(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    values = [*args, *(kwargs[k] for k in ("start", "end", "step") if k in kwargs)]
    return any(isinstance(v, float) or (isinstance(v, Tensor) and v.is_floating_point()) for v in values)


arange = _factory("arange", _arange_floating)
zeros = _factory("zeros", lambda args, kwargs: True)
ones = _factory("ones", lambda args, kwargs: True)

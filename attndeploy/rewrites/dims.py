"""Is an output size (symbolically) an input dimension? And who called: user code or torch?

While exporting, sizes read from ``x.size()`` are 0-dim Tensors (TorchScript tracer:
``prim::NumToTensor(aten::size(x, axis))``) or SymInts (dynamo, `torch.export`). A size
that *is* the input's own dimension can be left alone (identity along that axis); any
other size must be computed from the runtime shape, never read as a Python int (that
would bake the sample's value into the graph).
"""

from __future__ import annotations

from types import FrameType
from typing import Any

import torch
from torch import Tensor
from torch.fx.experimental.symbolic_shapes import statically_known_true

# Callers in these packages get the original factories (exporter internals, numerics).
INTERNAL_PREFIXES = ("torch", "functorch", "onnx", "onnxscript", "onnxruntime", "numpy", "sympy",
                     "attndeploy.rewrites", "attndeploy.ops.pooling")


def _trace_value(t: Tensor) -> Any:
    """The TorchScript tracer's value for `t` (a `torch._C.Value`); RuntimeError if untraced."""
    return torch._C._get_value_trace(t)  # type: ignore[attr-defined]


def _traced_size_source(size: Tensor) -> tuple[Any, int] | None:
    """(traced value of the tensor, axis) if `size` is ``aten::size(t, axis)`` in the current trace."""
    try:
        node = _trace_value(size).node()
    except RuntimeError:  # not part of the trace: a constant
        return None
    while node.kind() in ("prim::NumToTensor", "aten::Int", "aten::ScalarImplicit"):
        node = next(iter(node.inputs())).node()
    inputs = list(node.inputs())
    if node.kind() != "aten::size" or len(inputs) != 2:
        return None
    axis = inputs[1].toIValue()
    if isinstance(axis, Tensor):
        axis = int(axis.item())
    return (inputs[0], int(axis)) if isinstance(axis, int) else None


# Ops that return a tensor of the same shape (often `self` itself: the tracer then rebinds it).
SAME_SHAPE_OPS = ("aten::contiguous", "aten::to", "aten::type_as", "aten::detach", "aten::clone", "aten::alias")


def _traced_aliases(x: Tensor) -> set[int]:
    """Unique ids of `x`'s traced value and of the values it is a same-shape copy of."""
    try:
        value = _trace_value(x)
    except RuntimeError:
        return set()
    ids = {value.unique()}
    node = value.node()
    while node.kind() in SAME_SHAPE_OPS:
        value = next(iter(node.inputs()))
        ids.add(value.unique())
        node = value.node()
    return ids


def same_dim(size: object, x: Tensor, axis: int) -> bool:
    """True iff `size` is `x`'s size along `axis` at every input shape, not just the sample's.

    Python ints equal the dimension only outside tracing (eager) or for static dims; a
    traced 0-dim Tensor must come from ``x.size(axis)`` itself; a SymInt must be provably
    the same symbol (no guard is added).
    """
    axis = axis % x.dim()
    if isinstance(size, torch.SymInt):
        return bool(statically_known_true(size == x.shape[axis]))
    if isinstance(size, Tensor):
        if torch.jit.is_tracing():
            source = _traced_size_source(size)
            if source is None:
                return False
            value, src_axis = source
            rank = value.type().dim() if hasattr(value.type(), "dim") else None
            src_axis = src_axis % rank if rank else src_axis
            return src_axis == axis and value.unique() in _traced_aliases(x)
        return size.numel() == 1 and int(size) == x.shape[axis]
    if isinstance(size, int) and not isinstance(size, bool):
        if torch.jit.is_tracing():
            return False  # a literal: the traced dimension may differ at run time
        dim = x.shape[axis]
        return isinstance(dim, int) and dim == size
    return False


def is_literal_one(size: object) -> bool:
    """A plain Python 1 (not a traced or symbolic size that happens to be 1)."""
    return isinstance(size, int) and not isinstance(size, (bool, torch.SymInt)) and size == 1


class Caller:
    """Who called a patched function: the calling frame's module, and the first user site.

    `frame` is the frame that called the patch (None while dynamo compiles: it cannot
    trace frame inspection, and every caller then counts as user code).
    """

    def __init__(self, frame: FrameType | None) -> None:
        self._frame = frame

    @property
    def module(self) -> str:
        return self._frame.f_globals.get("__name__", "") if self._frame is not None else ""

    @property
    def site(self) -> str:
        """``file:line`` of the first frame outside torch and attndeploy (e.g. a model's forward)."""
        frame = self._frame
        while frame is not None:
            name = frame.f_globals.get("__name__", "")
            if not name.startswith(("torch", "attndeploy.")):
                return f"{frame.f_code.co_filename}:{frame.f_lineno}"
            frame = frame.f_back
        return ""

    @property
    def internal(self) -> bool:
        """True for callers inside torch, the ONNX stack or this package's own rewrites, and for
        constructors (``__init__``: parameters keep the dtype and device the model was built with)."""
        if self._frame is not None and self._frame.f_code.co_name == "__init__":
            return True
        return is_internal(self.module)


def is_internal(module: str) -> bool:
    """True for callers inside torch, the ONNX stack or this package's own rewrites."""
    return any(module == p or module.startswith(p + ".") for p in INTERNAL_PREFIXES)

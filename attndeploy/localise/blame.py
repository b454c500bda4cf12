"""When export itself fails on an operator: which module calls it, and from which line.

`unsupported_op(message)` reads the operator out of an exporter's error:

- TorchScript: ``Exporting the operator 'aten::diag' to ONNX opset version 17 is not supported``;
- dynamo: ``No ONNX function found for <OpOverload(op='aten._linalg_svd', overload='default')>``
  or ``Error when translating node %histc : ... target=torch.ops.aten.histc.default ...``
  (pass the whole `str(err)`: the operator is below the first line).

`blame_export_error(model, example, message)` runs the model once in eager mode under a
`TorchFunctionMode` (names as TorchScript sees them: ``diag``, ``linalg_svd``) and a
`TorchDispatchMode` (aten operators after decomposition, as dynamo sees them:
``_linalg_svd``) with the module path stack, and names the first module that calls it.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from types import FrameType
from typing import Any

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from attndeploy.modulepath import ModuleStack, class_site

_TORCHSCRIPT = re.compile(r"Exporting the operator '(?:(\w+)::)?([\w.]+)' to ONNX opset version (\d+)")
_DYNAMO = (re.compile(r"No ONNX function found for <OpOverload\(op='(\w+)\.(\w+)'"),
           re.compile(r"target=torch\.ops\.(\w+)\.(\w+)\."),
           re.compile(r"\b(aten)::(\w+)"))
_INTERNAL = ("torch", "attndeploy.localise", "attndeploy.lint", "attndeploy.rewrites")


@dataclass(frozen=True)
class UnsupportedOp:
    """An operator an exporter could not write: ``aten::diag`` at `opset` (None: dynamo's message)."""

    namespace: str
    name: str
    opset: int | None
    reason: str

    @property
    def qualified(self) -> str:
        return f"{self.namespace}::{self.name}"


def unsupported_op(message: str) -> UnsupportedOp | None:
    """The operator named by an exporter's error message, or None."""
    found = _TORCHSCRIPT.search(message)
    if found:
        opset = int(found.group(3))
        return UnsupportedOp(found.group(1) or "aten", found.group(2), opset, f"which has no ONNX export at opset {opset}")
    for i, pattern in enumerate(_DYNAMO):
        found = pattern.search(message)
        if found:
            reason = ("which has no ONNX function in the dynamo exporter" if i == 0
                      else "which the dynamo exporter failed to translate")
            return UnsupportedOp(found.group(1), found.group(2), None, reason)
    return None


def _user_site() -> str:
    """``file:line`` of the first frame outside torch and attndeploy's own instrumentation."""
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        if not frame.f_globals.get("__name__", "").startswith(_INTERNAL):
            return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"
        frame = frame.f_back
    return ""


class _Found:
    """The first (module path, call site) seen calling the operator."""

    def __init__(self, op: UnsupportedOp, stack: ModuleStack) -> None:
        self.op, self.stack = op, stack
        self.hit: tuple[str, str] | None = None

    def see(self, names: tuple[str, ...]) -> None:
        if self.hit is None and self.op.name in names:
            self.hit = (self.stack.current, _user_site())


class _Functions(TorchFunctionMode):
    def __init__(self, found: _Found) -> None:
        super().__init__()
        self.found = found

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        self.found.see((getattr(func, "__name__", ""),))
        return func(*args, **(kwargs or {}))


class _Dispatch(TorchDispatchMode):
    def __init__(self, found: _Found) -> None:
        super().__init__()
        self.found = found

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        schema = getattr(func, "_schema", None)
        if schema is not None and schema.name.startswith(self.found.op.namespace + "::"):
            self.found.see((schema.name.split("::", 1)[1],))
        return func(*args, **(kwargs or {}))


def blame_export_error(model: nn.Module, example: Tensor, message: str) -> str | None:
    """One line naming the module that calls the operator `message` says cannot be exported.

    E.g. ``\\`head.proj\\` (FreqAttn, freq.py:41) calls aten::diag, which has no ONNX export
    at opset 17``. `model`: the model that was exported; `example`: its input (N, C, H, W);
    `message`: the exporter's whole error text. None when no operator is named, the model
    fails in eager mode, or no module calls it in eager mode.
    """
    op = unsupported_op(message)
    if op is None or not isinstance(model, nn.Module) or not isinstance(example, Tensor):
        return None
    stack = ModuleStack(model)
    found = _Found(op, stack)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), stack:
            with _Functions(found), _Dispatch(found):
                model(example.clone())
    except Exception:  # the model's own failure is reported by the eager checks, not here
        return None
    finally:
        model.train(was_training)
    if found.hit is None:
        return None
    path, site = found.hit
    module = stack.modules.get(path, model)
    if not site:
        file, line = class_site(type(module))
        site = f"{os.path.basename(file)}:{line}" if file else ""
    where = f"{type(module).__name__}, {site}" if site else type(module).__name__
    return f"`{path or '<root>'}` ({where}) calls {op.qualified}, {op.reason}"

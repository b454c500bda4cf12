"""TracerWarnings, caught while each module runs under `torch.jit.trace` (the TorchScript exporter's trace).

`trace_findings(model, example)` traces the model once (nothing is written; the trace is
dropped) with the module path stack, and turns each `TracerWarning` into a finding at the
module that was running and the user's line that raised it:

- "Converting a tensor to a Python boolean": an ``if``/``while`` on a tensor or a size —
  the trace keeps the example's branch (shape-dependent control flow);
- a tensor or size turned into a Python int/float/index, ``len()`` of a tensor, iterating
  over a tensor, ``torch.tensor`` of traced values: the example's value is recorded as a
  constant (trace-time constant).

Not reported: warnings raised inside torch or torchvision themselves (their argument
checks), and warnings at a line that only reads sizes on fixed axes (``math.sqrt(c)`` with
``c`` the channel count; see `source_lint.size_use`). A model the tracer cannot run (dict inputs, fixed devices on a CPU-only machine ...) gives
no findings here; the eager checks still run.
"""

from __future__ import annotations

import os
import sys
import warnings
from types import FrameType
from typing import Any

import torch
from torch import Tensor, nn
from torch.jit import TracerWarning

from attndeploy.lint.findings import BAKES, TorchFinding
from attndeploy.lint.source_lint import size_use
from attndeploy.modulepath import ModuleStack

SHAPE_FLOW = "shape-dependent control flow"
TRACE_CONSTANT = "trace-time constant"
BRANCH_CONSEQUENCE = ("exports only the branch the example takes: TorchScript traces that branch (other sizes run "
                      "the wrong code or fail), dynamo specializes the size (the axis stops being dynamic or export "
                      "fails)")
BRANCH_HINT = ("compute it without a Python branch on the size (both cases as tensor ops, e.g. always pool to the "
               "fixed size: a no-op when it already is), or export with fixed H, W (dynamic=False)")
CONSTANT_HINT = "keep sizes symbolic: x.shape[i] / x.size(i) without int(), len() or .item()"
_KINDS = (  # (words in the warning, hazard, call)
    ("Python boolean", SHAPE_FLOW, "a Python bool of a tensor or size (an if/while on it)"),
    ("Python integer", TRACE_CONSTANT, "a Python int of a tensor or size (int(), .item(), a size as a number)"),
    ("Python index", TRACE_CONSTANT, "a Python index from a tensor"),
    ("Python float", TRACE_CONSTANT, "a Python float of a tensor (float(), .item())"),
    ("Using len", TRACE_CONSTANT, "len() of a tensor"),
    ("Iterating over a tensor", TRACE_CONSTANT, "iterating over a tensor"),
    ("torch.tensor results are registered as constants", TRACE_CONSTANT, "torch.tensor(...) of traced values"),
)


def _library_roots() -> tuple[str, ...]:
    roots = [os.path.dirname(torch.__file__)]
    try:
        import torchvision

        roots.append(os.path.dirname(torchvision.__file__))
    except ImportError:  # pragma: no cover  (torchvision is a dependency; without it there is nothing to skip)
        pass
    return tuple(os.path.join(r, "") for r in roots)


def _code_at(filename: str, lineno: int) -> object | None:
    """The code object of the frame on the current stack executing `filename`:`lineno`."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename == filename and frame.f_lineno == lineno:
            return frame.f_code
        frame = frame.f_back
    return None


def _on_fixed_axes(filename: str, lineno: int, message: str) -> bool:
    """Whether the warned line only reads sizes that never vary (channels, weights, the rank): harmless."""
    if "Using len" in message:
        return False
    code = _code_at(filename, lineno)
    return code is not None and size_use(code, lineno) == "fixed"


def _in_library(filename: str) -> bool:
    """Whether torch or torchvision raised it: their own size checks, which hold at every size they accept."""
    return os.path.abspath(filename).startswith(_library_roots())


def _finding(path: str, message: str, site: str) -> TorchFinding:
    for words, hazard, call in _KINDS:
        if words in message:
            if hazard == SHAPE_FLOW:
                return TorchFinding(path, hazard, f"{call} (TracerWarning)", BRANCH_CONSEQUENCE, None, BRANCH_HINT,
                                    site)
            return TorchFinding(path, hazard, f"{call} (TracerWarning)", f"{BAKES}: TorchScript records the "
                                "example's value as a constant", None, CONSTANT_HINT, site)
    first = message.split(". ")[0][:100]
    return TorchFinding(path, "trace warning", f"{first} (TracerWarning)", "may make the TorchScript graph wrong "
                        "at other inputs", None, "see the warning; compute it with tensor ops", site)


def trace_findings(model: nn.Module, example: Tensor) -> list[TorchFinding]:
    """The TracerWarnings of one `torch.jit.trace(model, example)`, as findings in the order raised."""
    found: list[TorchFinding] = []
    with ModuleStack(model) as stack, warnings.catch_warnings():
        warnings.simplefilter("always")

        def show(message: Any, category: type, filename: str, lineno: int, file: Any = None,
                 line: Any = None) -> None:
            if issubclass(category, TracerWarning) and not _in_library(filename) \
                    and not _on_fixed_axes(filename, lineno, str(message)):
                found.append(_finding(stack.current, str(message), f"{filename}:{lineno}"))

        warnings.showwarning = show
        try:
            with torch.no_grad():
                torch.jit.trace(model, example, check_trace=False, strict=False)
        except Exception:  # noqa: S110  (a model that does not trace is the eager checks' and exporters' business)
            pass
    return found


__all__ = ["BRANCH_CONSEQUENCE", "BRANCH_HINT", "SHAPE_FLOW", "TRACE_CONSTANT", "trace_findings"]

"""What every reduced-precision graph must be before it is written: valid, ordered, float32 at its edges.

`verify_reduced(model, what)` raises `CheckFailed` (the converter or quantizer produced a
bad file: a finding, exit 1) unless the graph passes `onnx.checker` (which includes
topological order: TensorRT's parser and onnxruntime need it, and a converter that appends
Casts late breaks it) and every graph input and output is float32 (the runner that feeds
the fp32 model feeds this one).
"""

from __future__ import annotations

import onnx
from onnx import TensorProto

from attndeploy.errors import CheckFailed, first_line


def float_edges(model: onnx.ModelProto) -> list[str]:
    """Graph inputs/outputs that are not float32 (name: type)."""
    return [f"{v.name}: {TensorProto.DataType.Name(v.type.tensor_type.elem_type)}"
            for v in (*model.graph.input, *model.graph.output)
            if v.type.tensor_type.elem_type != TensorProto.FLOAT]


def verify_reduced(model: onnx.ModelProto, what: str) -> None:
    """Raise `CheckFailed` naming the first problem of `what` (e.g. "the fp16 graph")."""
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as err:
        raise CheckFailed(f"{what} fails onnx.checker: {first_line(err, 300)}") from err
    edges = float_edges(model)
    if edges:
        raise CheckFailed(f"{what} must keep float32 graph inputs and outputs, got {', '.join(edges)}")


__all__ = ["float_edges", "verify_reduced"]

"""An ONNX graph's inputs and outputs as the deploy files need them: names, element types, dims, the batch axis.

    >>> inputs, outputs = graph_io(read_graph(Path("models/cbam/cbam.onnx")))
    >>> inputs[0]
    GraphTensor(name='input', elem_type=1, dims=('batch', 64, 'height', 'width'))

A dim is an `int` (static), a `str` (a named dynamic dim, ONNX's `dim_param`) or `None`
(dynamic, unnamed). Only the graph is read: external weights are not loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx

from attndeploy.errors import UsageError, require
from attndeploy.shapes import Shape, format_shape

Dim = int | str | None


@dataclass(frozen=True)
class GraphTensor:
    """One graph input or output. `elem_type`: an `onnx.TensorProto` data type; `dims`: see the module docstring."""

    name: str
    elem_type: int
    dims: tuple[Dim, ...]

    @property
    def dynamic(self) -> bool:
        return any(not isinstance(d, int) for d in self.dims)

    def dims_with_minus_one(self) -> tuple[int, ...]:
        """The dims with -1 where dynamic (Triton's and onnxruntime's way of writing them)."""
        return tuple(d if isinstance(d, int) else -1 for d in self.dims)


def read_graph(onnx_path: Path) -> onnx.ModelProto:
    """The model without its external data; `UsageError` for a missing file or one that is not ONNX."""
    require(onnx_path.is_file(), "the ONNX model must exist", "a readable .onnx file", str(onnx_path))
    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as err:  # protobuf's DecodeError and friends
        raise UsageError("the file must be an ONNX model", "a serialized onnx.ModelProto",
                         f"{onnx_path} ({type(err).__name__})") from err
    require(model.HasField("graph") and len(model.graph.output) > 0, "the file must be an ONNX model",
            "an onnx.ModelProto with a graph and outputs", str(onnx_path))
    return model


def _tensor(value: onnx.ValueInfoProto) -> GraphTensor:
    tensor = value.type.tensor_type
    require(value.type.HasField("tensor_type") and tensor.HasField("shape"),
            "deploy files need every graph input and output to be a tensor of known rank",
            "a tensor type with a shape", f"{value.name!r}: {value.type}".strip())
    dims: list[Dim] = []
    for d in tensor.shape.dim:
        if d.HasField("dim_value") and d.dim_value > 0:
            dims.append(int(d.dim_value))
        else:
            dims.append(d.dim_param or None)
    return GraphTensor(value.name, tensor.elem_type, tuple(dims))


def graph_io(model: onnx.ModelProto) -> tuple[list[GraphTensor], list[GraphTensor]]:
    """(inputs, outputs) in graph order; initializers listed as inputs (old exporters) are left out."""
    initializers = {t.name for t in model.graph.initializer}
    inputs = [_tensor(v) for v in model.graph.input if v.name not in initializers]
    return inputs, [_tensor(v) for v in model.graph.output]


def batch_is_dynamic(inputs: Sequence[GraphTensor], outputs: Sequence[GraphTensor]) -> bool:
    """Whether axis 0 of every input and output is one dynamic batch axis.

    Every tensor must have axis 0 dynamic, and the named ones one name: an output whose
    first axis is something else (NonMaxSuppression's selected boxes, named after the
    node) is not batched with the input.
    """
    tensors = [*inputs, *outputs]
    if not tensors or any(not t.dims or isinstance(t.dims[0], int) for t in tensors):
        return False
    names = {t.dims[0] for t in tensors if isinstance(t.dims[0], str)}
    return len(names) <= 1


def check_shapes(tensor: GraphTensor, min_shape: Shape, opt_shape: Shape, max_shape: Shape) -> None:
    """`UsageError` unless min <= opt <= max, each of the input's rank, equal to its static dims, every dim >= 1."""
    shapes = {"min": tuple(min_shape), "opt": tuple(opt_shape), "max": tuple(max_shape)}
    for label, shape in shapes.items():
        require(len(shape) == len(tensor.dims), f"the {label} shape must have the rank of input {tensor.name!r}",
                f"{len(tensor.dims)} dims", format_shape(shape))
        require(all(d >= 1 for d in shape), f"the {label} shape's dims must be positive", "every dim >= 1",
                format_shape(shape))
        static = [(i, d) for i, d in enumerate(tensor.dims) if isinstance(d, int)]
        require(all(shape[i] == d for i, d in static), f"the {label} shape must keep the static dims of input "
                f"{tensor.name!r}", format_shape(tensor.dims_with_minus_one()).replace("-1", "?"), format_shape(shape))
    lo, opt, hi = shapes["min"], shapes["opt"], shapes["max"]
    require(all(a <= b <= c for a, b, c in zip(lo, opt, hi)), "shapes must satisfy min <= opt <= max in every dim",
            "min <= opt <= max", f"min {format_shape(lo)}, opt {format_shape(opt)}, max {format_shape(hi)}")

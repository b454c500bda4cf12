"""Checks on a written ONNX model: trust nothing the exporter says, read the file."""

from __future__ import annotations

from collections.abc import Sequence

import onnx

from attndeploy.errors import CheckFailed, UsageError, first_line
from attndeploy.onnxgraph import float64_sites


def default_opset(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    raise CheckFailed("the ONNX model imports no default-domain opset")


def check_opset(model: onnx.ModelProto, requested: int, exporter: str) -> None:
    actual = default_opset(model)
    if actual != requested:
        raise UsageError(f"the {exporter} exporter wrote a different opset than requested", requested, actual,
                         "the dynamo exporter writes >= 18; use --exporter torchscript for lower opsets")


def float64_tensors(model: onnx.ModelProto) -> list[str]:
    """Every float64 initializer, constant, graph value or Cast target in the model, in words."""
    return [site.what for site in float64_sites(model)]


def check_no_float64(model: onnx.ModelProto) -> None:
    found = float64_tensors(model)
    if found:
        raise CheckFailed(f"the graph holds float64 tensors (TensorRT has none; ORT lacks kernels for some ops): "
                          f"{', '.join(found[:8])}{' ...' if len(found) > 8 else ''}")


def check_dynamic_dims(model: onnx.ModelProto, input_name: str, axes: Sequence[int], exporter: str) -> None:
    """Every requested dynamic axis of the input must be symbolic in the file, not baked."""
    inputs = {i.name: i for i in model.graph.input}
    dims = inputs[input_name].type.tensor_type.shape.dim
    baked = [f"dim {a} = {dims[a].dim_value}" for a in axes if dims[a].HasField("dim_value")]
    if baked:
        raise CheckFailed(f"the {exporter} exporter baked dynamic input axes of {input_name!r}: {', '.join(baked)}")


def set_min_ir_version(model: onnx.ModelProto) -> None:
    """The lowest IR version that holds the model's opsets, so older runtimes can read it.

    onnx 1.23's `make_model` writes IR 14; onnxruntime 1.31 reads <= 13.
    """
    model.ir_version = onnx.helper.find_min_ir_version_for(list(model.opset_import), ignore_unknown=True)


def node_counts(model: onnx.ModelProto) -> dict[str, int]:
    """Op type -> count over the main graph."""
    counts: dict[str, int] = {}
    for node in model.graph.node:
        key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def verify(model: onnx.ModelProto, requested_opset: int, exporter: str, input_name: str,
           dynamic_axes: Sequence[int]) -> None:
    """Opset equals the request, the checker passes, no float64, dynamic axes stayed dynamic."""
    check_opset(model, requested_opset, exporter)
    set_min_ir_version(model)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as err:
        raise CheckFailed(f"onnx.checker rejects the {exporter} export: {first_line(err)}") from err
    check_no_float64(model)
    check_dynamic_dims(model, input_name, dynamic_axes, exporter)

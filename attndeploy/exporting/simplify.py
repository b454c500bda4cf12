"""onnxsim with its numeric check on: a failed check is an error, not a warning."""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from attndeploy.errors import CheckFailed, first_line
from attndeploy.exporting.verify import set_min_ir_version
from attndeploy.fileio import stdout_to_stderr
from attndeploy.shapes import Shape


@dataclass(frozen=True)
class SimplifyReport:
    nodes_before: int
    nodes_after: int
    kept: str  # "simplified" or "original" (when onnxsim's graph would be larger)
    numeric_check: bool = True


def simplify(model: onnx.ModelProto, input_name: str, test_shape: Shape,
             numeric_check: bool = True) -> tuple[onnx.ModelProto, SimplifyReport]:
    """Simplify `model`, checked by onnxsim on random inputs of `test_shape` (3 runs).

    `numeric_check=False` is for graphs onnxruntime cannot run (TensorRT plugin nodes).
    """
    import onnxsim

    try:
        with stdout_to_stderr():
            simplified, check_ok = onnxsim.simplify(model, check_n=3 if numeric_check else 0,
                                                    test_input_shapes={input_name: list(test_shape)})
    except Exception as err:  # onnxsim raises bare RuntimeErrors from its C++ core
        raise CheckFailed(f"onnxsim failed: {first_line(err)}") from err
    if not check_ok:
        raise CheckFailed("onnxsim's numeric check failed: the simplified graph differs from the exported one")
    set_min_ir_version(simplified)
    before, after = len(model.graph.node), len(simplified.graph.node)
    if after > before:
        return model, SimplifyReport(before, after, "original", numeric_check)
    return simplified, SimplifyReport(before, after, "simplified", numeric_check)

"""onnxsim without its own numeric check: the pipeline's parity stage checks the simplified graph.

onnxsim also writes its debug record into the model's `metadata_props` (`onnxsim.removed_nodes`:
long lists of node names, its options ...): dropped here, so a written file carries its model
family's metadata and attndeploy's own only.
"""

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
    kept: str  # "simplified", or "original" (onnxsim's graph would be larger, or failed parity)


SIMPLIFIER_PREFIX = "onnxsim."


def strip_simplifier_metadata(model: onnx.ModelProto) -> list[str]:
    """Drop onnxsim's `onnxsim.*` entries from the model's `metadata_props` (in place); returns their keys."""
    entries = [(p.key, p.value) for p in model.metadata_props]
    del model.metadata_props[:]
    for key, value in entries:
        if not key.startswith(SIMPLIFIER_PREFIX):
            model.metadata_props.add(key=key, value=value)
    return [key for key, _ in entries if key.startswith(SIMPLIFIER_PREFIX)]


def simplify(model: onnx.ModelProto, input_name: str, test_shape: Shape) -> tuple[onnx.ModelProto, SimplifyReport]:
    """Simplify `model` with onnxsim (shapes inferred at `test_shape`), without onnxsim's own numeric check.

    onnxsim checks with a fixed tolerance on random inputs; the pipeline checks the result
    itself instead, against eager at every parity shape with the model's own tolerance.
    """
    import onnxsim

    try:
        with stdout_to_stderr():
            simplified, _ = onnxsim.simplify(model, check_n=0, test_input_shapes={input_name: list(test_shape)})
    except Exception as err:  # onnxsim raises bare RuntimeErrors from its C++ core
        raise CheckFailed(f"onnxsim failed: {first_line(err)}") from err
    set_min_ir_version(simplified)
    strip_simplifier_metadata(simplified)
    before, after = len(model.graph.node), len(simplified.graph.node)
    if after > before:
        return model, SimplifyReport(before, after, "original")
    return simplified, SimplifyReport(before, after, "simplified")

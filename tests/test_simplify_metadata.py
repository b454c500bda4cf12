"""onnxsim's debug record (`onnxsim.*` metadata: removed node names, its options) stays out of written files; the
model's own metadata stays in."""

from __future__ import annotations

import onnx
import onnxsim
from onnx import TensorProto, helper

from attndeploy.exporting.simplify import simplify, strip_simplifier_metadata


def _model() -> onnx.ModelProto:
    """x (1, 4) -> Identity -> Relu -> y: onnxsim removes the Identity (and records it)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    nodes = [helper.make_node("Identity", ["x"], ["t"], name="/pass"), helper.make_node("Relu", ["t"], ["y"])]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 17)])
    helper.set_model_props(model, {"names": "{0: 'person'}", "stride": "32"})
    return model


def test_onnxsim_writes_its_record_and_simplify_drops_it() -> None:
    raw, _ = onnxsim.simplify(_model(), check_n=0)
    keys = [p.key for p in raw.metadata_props]
    assert "onnxsim.removed_nodes" in keys          # what onnxsim itself leaves in the file
    dropped = strip_simplifier_metadata(raw)
    assert "onnxsim.removed_nodes" in dropped and {p.key: p.value for p in raw.metadata_props} == \
        {"names": "{0: 'person'}", "stride": "32"}
    simplified, report = simplify(_model(), "x", (1, 4))
    assert report.kept == "simplified" and [n.op_type for n in simplified.graph.node] == ["Relu"]
    assert {p.key: p.value for p in simplified.metadata_props} == {"names": "{0: 'person'}", "stride": "32"}

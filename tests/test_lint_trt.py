"""`attndeploy.lint`: what each TensorRT generation's ONNX parser refuses, mapped back to PyTorch modules."""

from __future__ import annotations

import argparse
import io
import json

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

import attndeploy
from attndeploy.errors import UsageError
from attndeploy.lint import TRT_VERSIONS, lint_onnx, parser_support
from attndeploy.lint.scopes import module_scope, scope_from_node_name

FLOAT = TensorProto.FLOAT


def make_model(nodes, inputs, outputs, initializers=(), opset=17, domains=()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    opsets = [helper.make_opsetid("", opset), *(helper.make_opsetid(d, 1) for d in domains)]
    return helper.make_model(graph, opset_imports=opsets)


def value(name, shape, dtype=FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def errors(findings):
    return [f for f in findings if f.severity == "error"]


def deformconv_model(pads=(1, 1, 1, 1)) -> onnx.ModelProto:
    """ONNX DeformConv (opset 19) with a mask: x (1, 4, 8, 8) -> y (1, 4, 8, 8)."""
    w = numpy_helper.from_array(np.ones((4, 4, 3, 3), np.float32), "w")
    node = helper.make_node("DeformConv", ["x", "w", "offset", "", "mask"], ["y"], name="/block/dcn/DeformConv",
                            kernel_shape=[3, 3], pads=list(pads))
    return make_model([node], [value("x", [1, 4, 8, 8]), value("offset", [1, 18, 8, 8]), value("mask", [1, 9, 8, 8])],
                      [value("y", [1, 4, 8, 8])], [w], opset=19)


def plugin_model(**attrs) -> onnx.ModelProto:
    """A ModulatedDeformConv2d plugin node (inputs x, offset, mask, weight)."""
    w = numpy_helper.from_array(np.ones((4, 4, 3, 3), np.float32), "w")
    fields = {"stride": [1, 1], "padding": [1, 1], "dilation": [1, 1], "group": 1, "deformable_group": 1, **attrs}
    fields = {k: v for k, v in fields.items() if v is not None}
    inputs = ["x", "offset", "mask", "w"] if fields.pop("with_mask", True) else ["x", "offset", "w"]
    node = helper.make_node("ModulatedDeformConv2d", inputs, ["y"], name="/head/dcn/ModulatedDeformConv2d",
                            domain="trt.plugins", **fields)
    return make_model([node], [value("x", [1, 4, 8, 8]), value("offset", [1, 18, 8, 8]), value("mask", [1, 9, 8, 8])],
                      [value("y", [1, 4, 8, 8])], [w], opset=17, domains=["trt.plugins"])


def test_unknown_trt_version_lists_the_valid_ones():
    with pytest.raises(UsageError) as err:
        lint_onnx(deformconv_model(), trt="9")
    assert all(v in str(err.value) for v in TRT_VERSIONS)
    with pytest.raises(UsageError, match="did you mean '10'"):
        parser_support("10.")


def test_deformconv_is_refused_by_8_6_and_parsed_by_10():
    old = lint_onnx(deformconv_model(), trt="8.6")
    rules = {(f.rule, f.op_type) for f in errors(old)}
    assert ("unsupported-op", "DeformConv") in rules
    assert ("opset", "") in rules  # opset 19 > 8.6's 17
    deform = next(f for f in old if f.op_type == "DeformConv")
    assert deform.scope == "block.dcn" and "10.1" in deform.message

    new = lint_onnx(deformconv_model(), trt="10")
    assert errors(new) == []
    assert [(f.severity, f.rule) for f in new] == [("warning", "op-since")]  # 10.0 lacks it
    assert lint_onnx(deformconv_model(), trt="11") == []


def test_deformconv_asymmetric_pads():
    found = errors(lint_onnx(deformconv_model(pads=(1, 1, 2, 2)), trt="10"))
    assert [f.rule for f in found] == ["deformconv-pads"]


def test_float64_initializer_is_flagged_at_its_consumer():
    w = numpy_helper.from_array(np.ones((1, 4, 1, 1), np.float64), "scale64")
    nodes = [helper.make_node("Cast", ["scale64"], ["scale"], name="/gate/Cast", to=FLOAT),
             helper.make_node("Mul", ["x", "scale"], ["y"], name="/gate/Mul")]
    model = make_model(nodes, [value("x", [1, 4, 8, 8])], [value("y", [1, 4, 8, 8])], [w])
    for trt in TRT_VERSIONS:
        found = errors(lint_onnx(model, trt=trt))
        assert [(f.rule, f.node, f.scope) for f in found] == [("float64", "/gate/Cast", "gate")]
        assert "scale64" in found[0].message


def test_cast_to_float64_is_flagged():
    nodes = [helper.make_node("Cast", ["x"], ["x64"], name="/enc/Cast", to=TensorProto.DOUBLE),
             helper.make_node("Cast", ["x64"], ["y"], name="/enc/Cast_1", to=FLOAT)]
    model = make_model(nodes, [value("x", [1, 4])], [value("y", [1, 4])])
    assert [(f.rule, f.node) for f in errors(lint_onnx(model, "10"))] == [("float64", "/enc/Cast")]


def test_col2im_is_refused_everywhere():
    shape = numpy_helper.from_array(np.array([6, 6], np.int64), "image_shape")
    block = numpy_helper.from_array(np.array([3, 3], np.int64), "block_shape")
    node = helper.make_node("Col2Im", ["x", "image_shape", "block_shape"], ["y"], name="/block/fold/Col2Im")
    model = make_model([node], [value("x", [1, 36, 16])], [value("y", [1, 4, 6, 6])], [shape, block], opset=18)
    for trt in TRT_VERSIONS:
        found = [f for f in errors(lint_onnx(model, trt)) if f.op_type == "Col2Im"]
        assert [(f.rule, f.scope) for f in found] == [("unsupported-op", "block.fold")], trt


def reduce_model(axes_constant: bool) -> onnx.ModelProto:
    """ReduceSum (opset 13) whose axes are an initializer, or computed from the input's shape."""
    if axes_constant:
        nodes = [helper.make_node("ReduceSum", ["x", "axes"], ["y"], name="/pool/ReduceSum", keepdims=1)]
        inits = [numpy_helper.from_array(np.array([2, 3], np.int64), "axes")]
    else:
        nodes = [helper.make_node("Shape", ["x"], ["shape"], name="/pool/Shape"),
                 helper.make_node("Slice", ["shape", "two", "four"], ["hw"], name="/pool/Slice"),
                 helper.make_node("Sub", ["hw", "hw"], ["zero"], name="/pool/Sub"),
                 helper.make_node("Add", ["zero", "offsets"], ["axes_t"], name="/pool/Add"),
                 helper.make_node("ReduceSum", ["x", "axes_t"], ["y"], name="/pool/ReduceSum", keepdims=1)]
        inits = [numpy_helper.from_array(np.array(v, np.int64), n) for v, n in
                 (([2], "two"), ([4], "four"), ([2, 3], "offsets"))]
    return make_model(nodes, [value("x", [1, 4, 8, 8])], [value("y", [1, 4, 1, 1])], inits, opset=13)


def test_reduce_with_computed_axes_is_an_error():
    assert lint_onnx(reduce_model(axes_constant=True), "10") == []
    for trt in TRT_VERSIONS:
        found = errors(lint_onnx(reduce_model(axes_constant=False), trt))
        assert [(f.rule, f.node, f.scope) for f in found] == [("constant-input", "/pool/ReduceSum", "pool")], trt
        assert "axes_t" in found[0].message


def test_slice_with_computed_axes_depends_on_the_release():
    nodes = [helper.make_node("Shape", ["x"], ["s"], name="/Shape"),
             helper.make_node("Slice", ["s", "one", "two"], ["axis"], name="/Slice"),
             helper.make_node("Slice", ["x", "zero", "two", "axis"], ["y"], name="/crop/Slice")]
    inits = [numpy_helper.from_array(np.array([v], np.int64), n) for v, n in ((0, "zero"), (1, "one"), (2, "two"))]
    model = make_model(nodes, [value("x", [1, 4, 8, 8])], [value("y", None)], inits)
    by_version = {t: [(f.severity, f.rule) for f in lint_onnx(model, t) if f.node == "/crop/Slice"]
                  for t in TRT_VERSIONS}
    assert by_version == {"8.6": [("error", "constant-input")], "10": [("warning", "constant-input")], "11": []}


def test_plugin_field_named_groups_is_flagged():
    assert lint_onnx(plugin_model(), "10") == []
    assert lint_onnx(plugin_model(), "8.6") == []
    found = errors(lint_onnx(plugin_model(group=None, groups=2), "10"))
    assert [(f.rule, f.op_type, f.scope) for f in found] == [("plugin-field", "ModulatedDeformConv2d", "head.dcn")]
    assert "'groups'" in found[0].message and "did you mean 'group'" in found[0].message


def test_plugin_field_types_counts_and_inputs():
    assert [f.rule for f in errors(lint_onnx(plugin_model(group=[1]), "10"))] == ["plugin-field"]
    assert "must hold 2 ints" in errors(lint_onnx(plugin_model(stride=[1, 1, 1]), "10"))[0].message
    assert [f.rule for f in errors(lint_onnx(plugin_model(with_mask=False), "10"))] == ["plugin-inputs"]
    assert lint_onnx(plugin_model(plugin_version="1"), "10") == []


def test_pooling_window_limit_and_pad_modes():
    pool = helper.make_node("MaxPool", ["x"], ["y"], name="/pool/MaxPool", kernel_shape=[320, 320])
    found = errors(lint_onnx(make_model([pool], [value("x", [1, 1, 320, 320])], [value("y", [1, 1, 1, 1])]), "10"))
    assert [f.rule for f in found] == ["pool-window"] and "102400" in found[0].message
    pads = numpy_helper.from_array(np.zeros(8, np.int64), "pads")
    wrap = helper.make_node("Pad", ["x", "pads"], ["y"], name="/Pad", mode="wrap")
    model = make_model([wrap], [value("x", [1, 1, 4, 4])], [value("y", [1, 1, 4, 4])], [pads], opset=19)
    assert [f.rule for f in errors(lint_onnx(model, "11"))] == []
    assert [f.rule for f in errors(lint_onnx(model, "8.6")) if f.node] == ["pad-mode"]


def test_gridsample_must_be_4d():
    node = helper.make_node("GridSample", ["x", "grid"], ["y"], name="/warp/GridSample")
    model = make_model([node], [value("x", [1, 1, 4, 4, 4]), value("grid", [1, 4, 4, 4, 3])],
                       [value("y", [1, 1, 4, 4, 4])], opset=20)
    assert [f.rule for f in errors(lint_onnx(model, "10"))] == ["gridsample-rank"]


def test_scope_from_torchscript_node_names():
    assert scope_from_node_name("/backbone/layer3/1/attn/Conv") == "backbone.layer3.1.attn"
    assert scope_from_node_name("/backbone/layer3/layer3.1/layer3.1.0/conv/Conv") == "backbone.layer3.1.0.conv"
    assert scope_from_node_name("/SpatialGate/spatial/conv/Conv") == "SpatialGate.spatial.conv"
    assert scope_from_node_name("/Softmax") == ""
    assert scope_from_node_name("node_linear") is None


class _Fold(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fold = nn.Fold((6, 6), 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fold(x)


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = nn.Sequential(_Fold())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x) * 2


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_findings_name_the_pytorch_module_of_a_real_export(dynamo):
    x = torch.randn(1, 36, 16)
    if dynamo:
        model = torch.onnx.export(_Net().eval(), (x,), dynamo=True, opset_version=18, verbose=False).model_proto
        col2im = next(n for n in model.graph.node if n.op_type == "Col2Im")
        assert any(p.key == "pkg.torch.onnx.name_scopes" for p in col2im.metadata_props)
    else:
        buffer = io.BytesIO()
        torch.onnx.export(_Net().eval(), (x,), buffer, dynamo=False, opset_version=18)
        model = onnx.load_from_string(buffer.getvalue())
    found = [f for f in lint_onnx(model, "10") if f.op_type == "Col2Im"]
    assert [(f.severity, f.scope) for f in found] == [("error", "block.0.fold")]
    assert module_scope(next(n for n in model.graph.node if n.op_type == "Mul")) == ""


def test_unreadable_model_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="must exist"):
        lint_onnx(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\x00not onnx")
    with pytest.raises(UsageError, match="ONNX model"):
        lint_onnx(tmp_path / "junk.onnx")


def _run_cli(argv):
    from attndeploy.cli import lint_cmd

    parser = argparse.ArgumentParser()
    lint_cmd.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.run(args)


def test_cli_exit_codes_and_json(tmp_path, capsys):
    bad, good = tmp_path / "dcn.onnx", tmp_path / "plugin.onnx"
    onnx.save(deformconv_model(), bad)
    onnx.save(plugin_model(), good)
    assert _run_cli(["lint", str(bad), "--trt", "8.6", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["trt"] == "8.6" and not report["passed"] and report["errors"] >= 2
    assert "8.6-GA" in report["source"]
    assert {"severity", "rule", "node", "op_type", "scope", "message"} <= set(report["findings"][0])
    assert _run_cli(["lint", str(good), "--trt", "10"]) == 0
    assert "lint PASSED" in capsys.readouterr().out
    with pytest.raises(UsageError, match="TensorRT version"):
        _run_cli(["lint", str(good), "--trt", "7"])


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in attndeploy.list_modules() if n != "deformconv"])
def test_registry_exports_lint_clean(name, tmp_path):
    res = attndeploy.export(name, None, tmp_path / f"{name}.onnx", opset=17)
    assert res.parity.passed
    for trt in TRT_VERSIONS:
        assert [f.format() for f in lint_onnx(res.onnx_path, trt)] == [], trt


@pytest.mark.slow
def test_deformconv_export_for_each_release(tmp_path):
    """The registry's DeformConv block: ONNX DeformConv at opset 19, GridSample below."""
    onnx19 = attndeploy.export("deformconv", None, tmp_path / "dcn19.onnx", opset=19).onnx_path
    assert ("unsupported-op", "DeformConv") in {(f.rule, f.op_type) for f in errors(lint_onnx(onnx19, "8.6"))}
    assert errors(lint_onnx(onnx19, "10")) == [] and lint_onnx(onnx19, "11") == []
    onnx17 = attndeploy.export("deformconv", None, tmp_path / "dcn17.onnx", opset=17).onnx_path
    assert all(lint_onnx(onnx17, trt) == [] for trt in TRT_VERSIONS)

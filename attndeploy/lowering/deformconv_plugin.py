"""The TensorRT `ModulatedDeformConv2d` plugin form of deform_conv2d (TensorRT < 10.1, opsets < 19).

The node: domain `PLUGIN_DOMAIN`, op_type `PLUGIN_OP`, inputs (x, offset, mask, weight,
bias) — the plugin's order, mask required (an all-ones mask is synthesised for DCNv1) —
and the plugin's fields (TensorRT `plugin/modulatedDeformConvPlugin`: `stride`, `padding`,
`dilation` int[2]; `group`, `deformable_group` int) plus `plugin_version` and
`plugin_namespace`, the strings TensorRT's ONNX parser reads to find a plugin creator.
No runtime here runs the plugin: `plugin_nodes_to_onnx` swaps each plugin node for the
equivalent ONNX `DeformConv` so that the graph's numbers can be checked in onnxruntime.
"""

from __future__ import annotations

import difflib
from typing import Any, Optional

import numpy as np
import onnx
from onnx import AttributeProto

from attndeploy.errors import CheckFailed, first_line, require
from attndeploy.lowering.deformconv_onnx import DeformParams, OnnxScriptWriter

PLUGIN_DOMAIN = "trt.plugins"
PLUGIN_OP = "ModulatedDeformConv2d"
PLUGIN_VERSION = "1"
PLUGIN_NAMESPACE = ""
PLUGIN_DOMAIN_VERSION = 1
PLUGIN_FIELDS: dict[str, int] = {
    "stride": AttributeProto.INTS,
    "padding": AttributeProto.INTS,
    "dilation": AttributeProto.INTS,
    "group": AttributeProto.INT,
    "deformable_group": AttributeProto.INT,
    "plugin_version": AttributeProto.STRING,
    "plugin_namespace": AttributeProto.STRING,
}
_PAIR_MIN = {"stride": 1, "padding": 0, "dilation": 1}
_KNOWN_VERSIONS = ("1", "2")  # version 2 (IPluginV3) mirrors version 1's inputs and fields
_TYPE_NAME = {v: k for k, v in AttributeProto.AttributeType.items()}


def plugin_attributes(strides: list[int], pads: list[int], dilations: list[int], group: int,
                      offset_group: int) -> dict[str, Any]:
    """The plugin's fields from ONNX-style attributes; `pads` is [top, left, bottom, right].

    The plugin pads each axis by one amount, so asymmetric pads are a `UsageError`.
    """
    require(len(pads) == 4 and pads[0] == pads[2] and pads[1] == pads[3],
            "the ModulatedDeformConv2d plugin needs symmetric padding (one pad per axis)",
            "pads [ph, pw, ph, pw]", list(pads), "pad the input explicitly or use deform_conv='decompose'")
    return {"stride": [int(v) for v in strides], "padding": [int(pads[0]), int(pads[1])],
            "dilation": [int(v) for v in dilations], "group": int(group), "deformable_group": int(offset_group),
            "plugin_version": PLUGIN_VERSION, "plugin_namespace": PLUGIN_NAMESPACE}


def check_plugin_node(node: onnx.NodeProto) -> list[str]:
    """Problems with a plugin node against `PLUGIN_FIELDS`: unknown, missing, mistyped or out-of-range fields."""
    problems = []
    if (node.domain, node.op_type) != (PLUGIN_DOMAIN, PLUGIN_OP):
        problems.append(f"node is {node.domain}::{node.op_type}, expected {PLUGIN_DOMAIN}::{PLUGIN_OP}")
    if not 4 <= len(node.input) <= 5 or any(not name for name in node.input[:4]):
        problems.append(f"inputs must be (x, offset, mask, weight[, bias]) with a mask, got {list(node.input)}")
    attrs = {a.name: a for a in node.attribute}
    for name, attr in attrs.items():
        if name not in PLUGIN_FIELDS:
            close = difflib.get_close_matches(name, PLUGIN_FIELDS, n=1)
            problems.append(f"unknown field {name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    for name, kind in PLUGIN_FIELDS.items():
        attr = attrs.get(name)
        if attr is None:
            problems.append(f"missing field {name!r} ({_TYPE_NAME[kind]})")
        elif attr.type != kind:
            problems.append(f"field {name!r} must be {_TYPE_NAME[kind]}, got {_TYPE_NAME.get(attr.type, attr.type)}")
        elif name in _PAIR_MIN and (len(attr.ints) != 2 or min(attr.ints) < _PAIR_MIN[name]):
            problems.append(f"field {name!r} must be two ints >= {_PAIR_MIN[name]}, got {list(attr.ints)}")
        elif kind == AttributeProto.INT and attr.i < 1:
            problems.append(f"field {name!r} must be >= 1, got {attr.i}")
        elif name == "plugin_version" and attr.s.decode() not in _KNOWN_VERSIONS:
            problems.append(f"field 'plugin_version' must be one of {_KNOWN_VERSIONS}, got {attr.s.decode()!r}")
    return problems


_ONNXSCRIPT_OPS: dict[int, Any] = {}


def _onnxscript_plugin_op() -> Any:
    """An onnxscript Op for the plugin node, with a schema so that the dynamo exporter can record it."""
    if not _ONNXSCRIPT_OPS:
        from onnx.defs import OpSchema
        from onnxscript.values import Op, Opset

        attr = OpSchema.Attribute
        kinds = {int(AttributeProto.INTS): OpSchema.AttrType.INTS, int(AttributeProto.INT): OpSchema.AttrType.INT,
                 int(AttributeProto.STRING): OpSchema.AttrType.STRING}
        schema = OpSchema(
            PLUGIN_OP, PLUGIN_DOMAIN, PLUGIN_DOMAIN_VERSION, "TensorRT ModulatedDeformConv2d plugin",
            inputs=[OpSchema.FormalParameter(n, "T") for n in ("x", "offset", "mask", "weight")]
            + [OpSchema.FormalParameter("bias", "T", param_option=OpSchema.FormalParameterOption.Optional)],
            outputs=[OpSchema.FormalParameter("output", "T")],
            type_constraints=[("T", ["tensor(float)", "tensor(float16)"], "float32 or float16")],
            attributes=[attr(name, kinds[kind], "", required=True) for name, kind in PLUGIN_FIELDS.items()],
        )
        _ONNXSCRIPT_OPS[0] = Op(Opset(PLUGIN_DOMAIN, PLUGIN_DOMAIN_VERSION), PLUGIN_OP, schema)
    return _ONNXSCRIPT_OPS[0]


def emit_plugin(w: Any, p: DeformParams, x: Any, weight: Any, offset: Any, mask: Any, bias: Any) -> Any:
    """The plugin node; x: (N, C, H, W) -> (N, C_out, H', W').

    Without a mask (DCNv1) an all-ones mask (N, G_off·kh·kw, H', W') is synthesised.
    """
    ph, pw = p.padding
    attrs = plugin_attributes(list(p.stride), [ph, pw, ph, pw], list(p.dilation), p.groups, p.offset_groups)
    if not p.use_mask:
        shape = w.op("Shape", offset)
        dims = w.op("Concat", w.op("Slice", shape, w.const([0], np.int64), w.const([1], np.int64)),
                    w.const([p.offset_groups * p.taps], np.int64),
                    w.op("Slice", shape, w.const([2], np.int64), w.const([4], np.int64)), axis=0)
        mask = w.op("ConstantOfShape", dims, value=np.ones(1, dtype=w.dtype))
    if isinstance(w, OnnxScriptWriter):
        return _onnxscript_plugin_op()(x, offset, mask, weight, bias, **attrs)
    out = w.op(f"{PLUGIN_DOMAIN}::{PLUGIN_OP}", x, offset, mask, weight, bias, **attrs)
    x_sizes, o_sizes = w.sizes(x), w.sizes(offset)
    if x_sizes is not None and o_sizes is not None:  # no shape inference for custom ops: give the type
        out.setType(x.type().with_sizes([x_sizes[0], p.out_channels, o_sizes[2], o_sizes[3]]))
    return out


def _initializer_shape(model: onnx.ModelProto, name: str) -> Optional[list[int]]:
    for init in model.graph.initializer:
        if init.name == name:
            return list(init.dims)
    return None


def plugin_nodes_to_onnx(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `model` with every plugin node swapped for the equivalent ONNX `DeformConv`.

    Inputs (x, offset, mask, weight[, bias]) become (X, W, offset, B, mask); the default
    opset is raised to 19 (with onnx's version converter) where it is lower. Only for
    testing the plugin graph's numbers in onnxruntime: the result is not for TensorRT < 10.1.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    plugin = [i for i, n in enumerate(out.graph.node) if (n.domain, n.op_type) == (PLUGIN_DOMAIN, PLUGIN_OP)]
    if not plugin:
        return out
    for i in plugin:
        problems = check_plugin_node(out.graph.node[i])
        if problems:
            raise CheckFailed(f"plugin node {out.graph.node[i].name!r} is malformed: " + "; ".join(problems))
    opset = next((o.version for o in out.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 19:
        try:
            out = onnx.version_converter.convert_version(out, 19)
        except Exception as err:  # the converter raises bare RuntimeErrors for ops it cannot adapt
            raise CheckFailed(f"cannot raise the graph from opset {opset} to 19 for DeformConv: "
                              f"{first_line(err)}") from err
    for i, node in enumerate(out.graph.node):
        if (node.domain, node.op_type) != (PLUGIN_DOMAIN, PLUGIN_OP):
            continue
        a = {attr.name: onnx.helper.get_attribute_value(attr) for attr in node.attribute}
        x, offset, mask, weight = node.input[:4]
        bias = node.input[4] if len(node.input) == 5 else ""
        extra: dict[str, Any] = {}
        w_shape = _initializer_shape(out, weight)
        if w_shape is not None and len(w_shape) == 4:
            extra["kernel_shape"] = w_shape[2:]
        ph, pw = a["padding"]
        new = onnx.helper.make_node(
            "DeformConv", [x, weight, offset, bias, mask], list(node.output), name=node.name or f"deform_conv_{i}",
            strides=list(a["stride"]), pads=[ph, pw, ph, pw], dilations=list(a["dilation"]), group=a["group"],
            offset_group=a["deformable_group"], **extra)
        out.graph.node[i].CopyFrom(new)
    if not any(n.domain == PLUGIN_DOMAIN for n in out.graph.node):
        keep = [o for o in out.opset_import if o.domain != PLUGIN_DOMAIN]
        del out.opset_import[:]
        out.opset_import.extend(keep)
    out.ir_version = onnx.helper.find_min_ir_version_for(list(out.opset_import), ignore_unknown=True)
    return out


"""TensorRT readiness without a GPU: what a TensorRT generation's ONNX parser will refuse or mishandle.

    >>> findings = lint_onnx("models/cbam/cbam.onnx", trt="10")
    >>> [f.format() for f in findings if f.severity == "error"]
    []

Each `Finding` names the rule, the node, its op type and the PyTorch module scope that
produced it (see `attndeploy.lint.scopes`). The tables live in `trt_support`; the rules for
fp16 and Q/DQ graphs (fp16 ops, zero points, scales, per-channel axes, quantized types) in
`attndeploy.lint.precision_lint`.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto

from attndeploy.lint.findings import ERROR, WARNING, Finding
from attndeploy.lint.onnx_file import load_model
from attndeploy.lint.precision_lint import reduced_precision_rules
from attndeploy.lint.scopes import module_scope
from attndeploy.lint.trt_detect_ops import QDQ, detection_op_rules
from attndeploy.lint.trt_support import (
    PLUGIN_RESERVED_ATTRS,
    POOL_OPS,
    UNSUPPORTED_OP_HINTS,
    ParserSupport,
    PluginSpec,
    parser_support,
    version_tuple,
)
from attndeploy.onnxgraph import all_graphs, float64_sites

DEFAULT_DOMAINS = ("", "ai.onnx")


class _ParserChecks:
    def __init__(self, model: onnx.ModelProto, support: ParserSupport, inferred: onnx.ModelProto) -> None:
        self.model, self.s = model, support
        self.findings: list[Finding] = []
        self.ranks: dict[str, int] = {}
        self.elem: dict[str, int] = {}
        self.dims: dict[str, list[int | None]] = {}
        for g in all_graphs(inferred.graph):
            for v in (*g.input, *g.output, *g.value_info):
                t = v.type.tensor_type
                self.elem[v.name] = t.elem_type
                if t.HasField("shape"):
                    self.ranks[v.name] = len(t.shape.dim)
                    self.dims[v.name] = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
        self.constants: dict[str, TensorProto] = {}
        for g in all_graphs(model.graph):
            self.constants.update({t.name: t for t in g.initializer})
            for n in g.node:
                if n.op_type == "Constant" and n.domain in DEFAULT_DOMAINS:
                    value = next((a.t for a in n.attribute if a.name == "value"), None)
                    if value is not None and n.output:
                        self.constants[n.output[0]] = value
            for n in g.node:  # Identity of a constant is still a constant to the parser
                if n.op_type == "Identity" and n.input and n.input[0] in self.constants and n.output:
                    self.constants[n.output[0]] = self.constants[n.input[0]]
        self.consumers: dict[str, onnx.NodeProto] = {}
        self.producers: dict[str, onnx.NodeProto] = {}
        for g in all_graphs(model.graph):
            for n in g.node:
                for name in n.input:
                    self.consumers.setdefault(name, n)
                self.producers.update({name: n for name in n.output if name})
        self.quantized = any(n.op_type in QDQ for g in all_graphs(model.graph) for n in g.node)

    @property
    def where(self) -> str:
        return f"JetPack {self.s.jetpack}'s TensorRT {self.s.release}" if self.s.jetpack else f"TensorRT {self.s.key}"

    def add(self, severity: str, rule: str, node: onnx.NodeProto | None, message: str) -> None:
        if node is None:
            self.findings.append(Finding(severity, rule, "", "", "", message))
        else:
            self.findings.append(Finding(severity, rule, node.name or f"<unnamed {node.op_type}>", node.op_type,
                                         module_scope(node), message))

    def run(self) -> list[Finding]:
        self.check_opset()
        for graph in all_graphs(self.model.graph):
            for node in graph.node:
                self.check_node(node)
        self.check_float64()
        for severity, rule, node, message in reduced_precision_rules(self.model, self.s, self.constants, self.elem):
            self.add(severity, rule, node, message)
        order = {ERROR: 0, WARNING: 1}
        return sorted(self.findings, key=lambda f: order[f.severity])

    def check_opset(self) -> None:
        s = self.s
        opset = next((o.version for o in self.model.opset_import if o.domain in DEFAULT_DOMAINS), None)
        if opset is None:
            self.add(ERROR, "opset", None, "the model imports no default-domain opset")
        elif opset < s.hard_opset_min:
            self.add(ERROR, "opset", None, f"opset {opset}: the parser refuses opsets below {s.hard_opset_min}")
        elif opset > s.opset_max:
            self.add(ERROR, "opset", None, f"opset {opset} is outside TensorRT {s.key}'s documented range "
                     f"{s.opset_min}..{s.opset_max}: re-export with --opset {s.opset_max} or lower")
        elif opset < s.opset_min:
            self.add(WARNING, "opset", None, f"opset {opset} is below TensorRT {s.key}'s documented range "
                     f"{s.opset_min}..{s.opset_max} (the parser still reads opsets >= {s.hard_opset_min})")

    def check_node(self, node: onnx.NodeProto) -> None:
        s, op = self.s, node.op_type
        if op in s.plugins:
            self.check_plugin(node, s.plugins[op])
            return
        if node.domain not in DEFAULT_DOMAINS:
            self.add(ERROR, "custom-op", node, f"op {node.domain}::{op} is not an ONNX op: the parser accepts it only "
                     f"if a TensorRT plugin named {op!r} is registered (known plugins: {', '.join(sorted(s.plugins))})")
            return
        hint = f" ({UNSUPPORTED_OP_HINTS[op]})" if op in UNSUPPORTED_OP_HINTS else ""
        if op in s.supported:
            since = s.supported[op]
            if s.release is not None and version_tuple(since) > version_tuple(s.release):
                self.add(ERROR, "op-since", node, f"{op} is parsed from TensorRT {since} on; {self.where} refuses "
                         f"it{hint}")
                return
            if s.release is None and version_tuple(since) > version_tuple(s.baseline):
                self.add(WARNING, "op-since", node, f"{op} is parsed from TensorRT {since} on; "
                         f"older {s.key}.x releases refuse it{hint}")
        elif op in s.unsupported:
            self.add(ERROR, "unsupported-op", node, f"TensorRT {s.key}'s ONNX parser does not support {op}{hint}")
            return
        else:
            self.add(ERROR, "unsupported-op", node, f"{op} is not in TensorRT {s.key}'s operator table "
                     f"(the parser fails unless a plugin named {op!r} is registered){hint}")
            return
        self.check_constant_inputs(node)
        checks = {"Pad": self.check_pad, "GridSample": self.check_gridsample, "DeformConv": self.check_deformconv,
                  "LayerNormalization": self.check_layernorm, "Resize": self.check_resize,
                  "Constant": self.check_constant}
        for severity, rule, where, message in detection_op_rules(self, node):
            self.add(severity, rule, where, message)
        if op in POOL_OPS:
            self.check_pool(node)
        elif op in checks:
            checks[op](node)

    def check_constant_inputs(self, node: onnx.NodeProto) -> None:
        for rule in self.s.constant_inputs_of(node.op_type):
            if len(node.input) <= rule.index or not node.input[rule.index]:
                continue
            if node.input[rule.index] in self.constants:
                continue
            tensor = node.input[rule.index]
            accepted = (rule.relaxed_since is not None and self.s.release is not None
                        and version_tuple(rule.relaxed_since) <= version_tuple(self.s.release))
            if accepted:
                continue
            if rule.relaxed_since is None or self.s.release is not None:
                self.add(ERROR, "constant-input", node, f"input {rule.index} ({rule.name}) of {node.op_type} must be "
                         f"an initializer or a Constant node's output, got the computed tensor {tensor!r} "
                         "(fold constants: onnxsim or polygraphy surgeon sanitize --fold-constants)")
            else:
                self.add(WARNING, "constant-input", node, f"input {rule.index} ({rule.name}) of {node.op_type} is the "
                         f"computed tensor {tensor!r}: TensorRT {self.s.key}.x accepts it from {rule.relaxed_since} "
                         "on, older releases require an initializer")

    def _attr(self, node: onnx.NodeProto, name: str) -> AttributeProto | None:
        return next((a for a in node.attribute if a.name == name), None)

    def check_pad(self, node: onnx.NodeProto) -> None:
        attr = self._attr(node, "mode")
        mode = attr.s.decode() if attr is not None else "constant"
        if mode not in self.s.pad_modes:
            self.add(ERROR, "pad-mode", node, f"Pad mode {mode!r} is not supported by TensorRT {self.s.key}: "
                     f"expected one of {', '.join(sorted(self.s.pad_modes))}")

    def check_pool(self, node: onnx.NodeProto) -> None:
        kernel = self._attr(node, "kernel_shape")
        dims = list(kernel.ints) if kernel is not None else []
        if dims and len(dims) not in (2, 3):
            self.add(ERROR, "pool-rank", node, f"{node.op_type} supports 2-D or 3-D windows only, "
                     f"got kernel_shape {dims}")
        volume = int(np.prod(dims)) if dims else 0
        if volume >= self.s.max_pool_window_volume:
            self.add(ERROR, "pool-window", node, f"{node.op_type} window volume must be < "
                     f"{self.s.max_pool_window_volume}, got {' x '.join(map(str, dims))} = {volume} "
                     "(use ReduceMean/ReduceMax, or pool in two stages)")
        dilations = self._attr(node, "dilations")
        if self.s.pool_dilations_must_be_one and dilations is not None and any(d != 1 for d in dilations.ints):
            self.add(ERROR, "pool-dilations", node, f"{node.op_type} dilations must be empty or all ones, "
                     f"got {list(dilations.ints)}")
        if node.op_type == "MaxPool" and len(node.output) > 1 and node.output[1]:
            self.add(ERROR, "maxpool-indices", node, "MaxPool's Indices output is not supported")

    def check_gridsample(self, node: onnx.NodeProto) -> None:
        rank = self.ranks.get(node.input[0]) if node.input else None
        if rank is not None and rank != self.s.gridsample_rank:
            self.add(ERROR, "gridsample-rank", node, f"GridSample input must be {self.s.gridsample_rank}-D (N, C, H, W), "
                     f"got rank {rank}")

    def check_deformconv(self, node: onnx.NodeProto) -> None:
        pads = self._attr(node, "pads")
        if pads is not None and self.s.deformconv_symmetric_pads:
            values = list(pads.ints)
            half = len(values) // 2
            if values[:half] != values[half:]:
                self.add(ERROR, "deformconv-pads", node, "DeformConv pads must be equal at the beginning and the "
                         f"end of each spatial axis, got {values}")
        rank = self.ranks.get(node.input[0]) if node.input else None
        if rank is not None and rank not in (3, 4):
            self.add(ERROR, "deformconv-rank", node, f"DeformConv input must have 1 or 2 spatial dims, got rank {rank}")

    def check_layernorm(self, node: onnx.NodeProto) -> None:
        extra = [o for o in node.output[1:] if o]
        if self.s.layernorm_first_output_only and extra:
            self.add(ERROR, "layernorm-outputs", node, f"only LayerNormalization's first output Y is supported, "
                     f"the node also writes {extra}")

    def check_resize(self, node: onnx.NodeProto) -> None:
        def text(name: str, default: str) -> str:
            attr = self._attr(node, name)
            return attr.s.decode() if attr is not None else default

        mode, coord = text("mode", "nearest"), text("coordinate_transformation_mode", "half_pixel")
        if mode not in self.s.resize_modes:
            self.add(ERROR, "resize-mode", node, f"Resize mode {mode!r} is not supported: expected one of "
                     f"{', '.join(sorted(self.s.resize_modes))}")
        if coord not in self.s.resize_coordinate_modes:
            self.add(ERROR, "resize-mode", node, f"Resize coordinate_transformation_mode {coord!r} is not supported: "
                     f"expected one of {', '.join(sorted(self.s.resize_coordinate_modes))}")
        antialias = self._attr(node, "antialias")
        if antialias is not None and antialias.i and self.s.key != "8.6":
            self.add(ERROR, "resize-mode", node, "Resize antialiasing is not supported")

    def check_constant(self, node: onnx.NodeProto) -> None:
        bad = [a.name for a in node.attribute if a.name in ("sparse_value", "value_string", "value_strings")]
        if bad:
            self.add(ERROR, "constant-attribute", node, f"Constant attribute {bad[0]!r} is not supported")

    def check_plugin(self, node: onnx.NodeProto, spec: PluginSpec) -> None:
        s = self.s
        if version_tuple(spec.since) > version_tuple(s.baseline):
            self.add(WARNING, "plugin", node, f"the {spec.name} plugin ships with TensorRT {spec.since} on")
        kinds = {AttributeProto.INT: "int", AttributeProto.INTS: "ints", AttributeProto.FLOAT: "float",
                 AttributeProto.FLOATS: "floats", AttributeProto.STRING: "string", AttributeProto.STRINGS: "strings"}
        for attr in node.attribute:
            if attr.name in PLUGIN_RESERVED_ATTRS:
                continue
            field = spec.fields.get(attr.name)
            kind = kinds.get(attr.type, "other")
            if field is None:
                close = difflib.get_close_matches(attr.name, list(spec.fields), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.add(ERROR, "plugin-field", node, f"{spec.name} has no field {attr.name!r}{hint}: the plugin "
                         f"ignores unknown fields, so its default is used silently; fields are "
                         f"{', '.join(f'{k} ({v.kind})' for k, v in spec.fields.items())}")
            elif kind != field.kind:
                self.add(ERROR, "plugin-field", node, f"{spec.name} field {attr.name!r} must be an {field.kind} "
                         f"attribute, got {kind}")
            elif kind == "ints" and len(attr.ints) != field.count:
                self.add(ERROR, "plugin-field", node, f"{spec.name} field {attr.name!r} must hold {field.count} "
                         f"ints, got {list(attr.ints)}")
        n_inputs = len(node.input)
        if not spec.min_inputs <= n_inputs <= spec.max_inputs:
            self.add(ERROR, "plugin-inputs", node, f"{spec.name} takes {spec.min_inputs}..{spec.max_inputs} inputs "
                     f"({spec.inputs}), got {n_inputs}")

    def check_float64(self) -> None:
        for site in float64_sites(self.model, self.elem):
            node = site.node or self.consumers.get(site.tensor)
            self.add(ERROR, "float64", node, f"{site.what}: TensorRT has no float64 (the parser narrows weights to "
                     "float32 with clamping and refuses float64 tensors): export in float32")


def lint_onnx(model_or_path: onnx.ModelProto | str | Path | bytes, trt: str | None = "10",
              jetpack: str | None = None) -> list[Finding]:
    """Findings for `model_or_path` against TensorRT `trt`'s ONNX parser ("8.6", "10" or "11"), or the exact
    TensorRT release a `jetpack` ships ("6.1", "6.2": then a rule relaxed by a later release is an error), errors
    first."""
    return _lint(model_or_path, [parser_support(None if jetpack is not None and trt == "10" else trt, jetpack)])[0]


def lint_releases(model_or_path: onnx.ModelProto | str | Path | bytes, trts: Sequence[str]) -> dict[str, list[Finding]]:
    """`lint_onnx` for each release in `trts` ("8.6", "10", "11"), the model read and its shapes inferred once."""
    return dict(zip(trts, _lint(model_or_path, [parser_support(trt, None) for trt in trts])))


def _lint(model_or_path: onnx.ModelProto | str | Path | bytes, supports: list[ParserSupport]) -> list[list[Finding]]:
    model = load_model(model_or_path)
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # a model the checker rejects still gets every other rule
        inferred = model
    return [_ParserChecks(model, support, inferred).run() for support in supports]


def has_errors(findings: list[Finding]) -> bool:
    return any(f.severity == ERROR for f in findings)

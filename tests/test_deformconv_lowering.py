"""torchvision's deform_conv2d exported through `deform_conv_export`: each lowering, both exporters.

Offsets and masks come from convs with random weights inside the module (offsets of
several pixels, so sampling crosses the borders); the graphs are checked in onnxruntime
against torchvision's eager output with numpy's rule |got - ref| <= 1e-4 + 1e-3·|ref| at
shapes with H or W = 1 and batch 3. Run with `-s` to see the max abs error per case and
the decompose/DeformConv speed ratio.
"""

from __future__ import annotations

import contextlib
import io
import statistics
import time
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn
from torchvision.ops import deform_conv2d

from attndeploy.errors import UsageError
from attndeploy.families.deformconv import DeformConvBlockDeploy
from attndeploy.lowering.deformconv import (
    LOWERINGS,
    PLUGIN_DOMAIN,
    PLUGIN_FIELDS,
    PLUGIN_OP,
    check_deform_inputs,
    check_plugin_node,
    deform_conv_export,
    plugin_attributes,
    plugin_nodes_to_onnx,
    resolve_deform_lowering,
)

ATOL, RTOL = 1e-4, 1e-3


class UserDeform(nn.Module):
    """A user module calling `torchvision.ops.deform_conv2d` directly; offset and mask from random convs."""

    def __init__(self, c: int = 4, c_out: int = 6, k: int = 3, stride: int = 1, padding: int = 1, dilation: int = 1,
                 groups: int = 1, offset_groups: int = 1, mask: bool = True, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.stride, self.padding, self.dilation = stride, padding, dilation
        taps = offset_groups * k * k
        self.offset_conv = nn.Conv2d(c, 2 * taps, k, stride, padding, dilation)
        self.mask_conv = nn.Conv2d(c, taps, k, stride, padding, dilation) if mask else None
        self.weight = nn.Parameter(torch.randn(c_out, c // groups, k, k, generator=gen) * 0.3)
        self.bias = nn.Parameter(torch.randn(c_out, generator=gen))
        with torch.no_grad():  # offsets of several pixels: std ~ sqrt(c·k·k) px
            self.offset_conv.weight.normal_(0.0, 1.0, generator=gen)
            self.offset_conv.bias.normal_(0.0, 2.0, generator=gen)
            if self.mask_conv is not None:
                self.mask_conv.weight.normal_(0.0, 0.5, generator=gen)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) -> (N, C_out, H', W')."""
        mask = self.mask_conv(x).sigmoid() if self.mask_conv is not None else None
        return deform_conv2d(x, self.offset_conv(x), self.weight, self.bias, stride=self.stride,
                             padding=self.padding, dilation=self.dilation, mask=mask)


CONFIGS = {
    "mask": {},
    "no_mask": {"mask": False},
    "stride2": {"stride": 2},
    "dilation2": {"dilation": 2, "padding": 2},
    "padding2": {"padding": 2},
    "groups2": {"groups": 2},
    "offset_groups4": {"c": 8, "offset_groups": 4},
    "kernel1x1": {"k": 1, "padding": 0},
    "kernel5x5": {"k": 5, "padding": 2},
    "mixed_no_mask": {"c": 8, "c_out": 4, "stride": 2, "dilation": 2, "padding": 2, "groups": 2, "offset_groups": 2,
                      "mask": False},
}
HW = [(9, 11), (1, 7), (6, 1), (16, 13)]
BATCH = [1, 3, 2, 3]


def export(model: nn.Module, lowering: str, opset: int, exporter: str, tmp_path, c: int = 4) -> onnx.ModelProto:
    """Export with dynamic N, H, W inside the context; input 'x', output 'y'."""
    x = torch.randn(1, c, 9, 11)
    model = model.eval()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        with deform_conv_export(lowering, opset, exporter) as extra:
            if exporter == "torchscript":
                path = tmp_path / f"{lowering}_{opset}.onnx"
                torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=opset, input_names=["x"],
                                  output_names=["y"], dynamic_axes={"x": {0: "n", 2: "h", 3: "w"},
                                                                    "y": {0: "n", 2: "ho", 3: "wo"}}, **extra)
                return onnx.load(str(path))
            dim = torch.export.Dim.DYNAMIC
            program = torch.onnx.export(model, (x,), dynamo=True, opset_version=opset, input_names=["x"],
                                        output_names=["y"], dynamic_shapes=({0: dim, 2: dim, 3: dim},), **extra)
            return program.model_proto


def max_errors(model: onnx.ModelProto, module: nn.Module, c: int = 4, seed: int = 7) -> list[float]:
    """Max abs error at each test shape; raises AssertionError where numpy's allclose rule fails."""
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(seed)
    errors = []
    for n, (h, w) in zip(BATCH, HW):
        x = torch.randn(n, c, h, w, generator=gen)
        with torch.no_grad():
            ref = module(x).numpy()
        got = session.run(None, {"x": x.numpy()})[0]
        np.testing.assert_allclose(got, ref, atol=ATOL, rtol=RTOL, err_msg=f"shape {(n, c, h, w)}")
        errors.append(float(np.abs(got - ref).max()))
    return errors


def node_types(model: onnx.ModelProto) -> set[str]:
    return {f"{n.domain}::{n.op_type}" if n.domain else n.op_type for n in model.graph.node}


def assert_form(model: onnx.ModelProto, lowering: str) -> None:
    types = node_types(model)
    if lowering == "onnx":
        assert "DeformConv" in types and "GridSample" not in types
    elif lowering == "decompose":
        assert "GridSample" in types and "MatMul" in types and "DeformConv" not in types
    else:
        assert f"{PLUGIN_DOMAIN}::{PLUGIN_OP}" in types and "DeformConv" not in types
        for node in model.graph.node:
            if node.domain == PLUGIN_DOMAIN:
                assert check_plugin_node(node) == []
    assert not any("torchvision" in n.domain for n in model.graph.node)


def parity(model: onnx.ModelProto, module: nn.Module, lowering: str, c: int) -> list[float]:
    onnx.checker.check_model(model)
    return max_errors(plugin_nodes_to_onnx(model) if lowering == "plugin" else model, module, c)


# -- parity: onnx at 19, decompose at 16 and 17 (TorchScript); the full matrix is slow ------------------

CASES = [("onnx", 19), ("decompose", 16), ("decompose", 17)]


@pytest.mark.parametrize("lowering,opset", CASES)
def test_torchscript_parity_mask(lowering, opset, tmp_path):
    module = UserDeform()
    model = export(module, lowering, opset, "torchscript", tmp_path)
    assert_form(model, lowering)
    print(lowering, opset, "mask", parity(model, module, lowering, 4))


@pytest.mark.slow
@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("lowering,opset", CASES)
def test_torchscript_parity_matrix(lowering, opset, config, tmp_path):
    kwargs = CONFIGS[config]
    module = UserDeform(**kwargs, seed=sorted(CONFIGS).index(config))
    model = export(module, lowering, opset, "torchscript", tmp_path, kwargs.get("c", 4))
    assert_form(model, lowering)
    print(lowering, opset, config, ["%.2e" % e for e in parity(model, module, lowering, kwargs.get("c", 4))])


@pytest.mark.slow
@pytest.mark.parametrize("exporter,lowering,opset,config", [
    ("dynamo", "onnx", 19, "mask"), ("dynamo", "onnx", 20, "mixed_no_mask"), ("dynamo", "decompose", 18, "mask"),
    ("dynamo", "decompose", 20, "mixed_no_mask"), ("dynamo", "decompose", 18, "offset_groups4"),
    ("dynamo", "plugin", 18, "mask"), ("dynamo", "plugin", 19, "no_mask"), ("torchscript", "onnx", 20, "no_mask"),
    ("torchscript", "decompose", 20, "mixed_no_mask"), ("torchscript", "decompose", 19, "kernel5x5")])
def test_other_exporters_and_opsets(exporter, lowering, opset, config, tmp_path):
    kwargs = CONFIGS[config]
    module = UserDeform(**kwargs)
    model = export(module, lowering, opset, exporter, tmp_path, kwargs.get("c", 4))
    assert_form(model, lowering)
    assert {o.domain: o.version for o in model.opset_import}[""] == opset
    print(exporter, lowering, opset, config, ["%.2e" % e for e in parity(model, module, lowering, kwargs.get("c", 4))])


@pytest.mark.parametrize("opset,config", [(13, "mask"), (17, "no_mask"), (16, "mixed_no_mask")])
def test_plugin_graph_numbers(opset, config, tmp_path):
    kwargs = CONFIGS[config]
    module = UserDeform(**kwargs)
    model = export(module, "plugin", opset, "torchscript", tmp_path, kwargs.get("c", 4))
    assert_form(model, "plugin")
    assert {o.domain: o.version for o in model.opset_import}[""] == opset
    swapped = plugin_nodes_to_onnx(model)
    assert "DeformConv" in node_types(swapped) and PLUGIN_DOMAIN not in {o.domain for o in swapped.opset_import}
    print("plugin", opset, config, parity(model, module, "plugin", kwargs.get("c", 4)))


def test_zoo_block_exports_through_the_context(tmp_path):
    block = DeformConvBlockDeploy(4, 6, offset_groups=2).eval()
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0.0, 0.8)
    model = export(block, "decompose", 17, "torchscript", tmp_path)
    assert_form(model, "decompose")
    max_errors(model, block)


# -- negative control: the same graph reading Δx as Δy must fail the same check ----------------------------


def swap_offset_yx(model: onnx.ModelProto, offset_channels: int) -> onnx.ModelProto:
    """Insert Gather(axis=1) swapping each (Δy, Δx) pair right after the offset conv; rewire its consumers."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    inits = {i.name: list(i.dims) for i in out.graph.initializer}
    conv = next(n for n in out.graph.node if n.op_type == "Conv" and inits.get(n.input[1], [0])[0] == offset_channels)
    name = conv.output[0]
    for node in out.graph.node:
        node.input[:] = [f"{name}_swapped" if i == name else i for i in node.input]
    perm = np.arange(offset_channels).reshape(-1, 2)[:, ::-1].reshape(-1).astype(np.int64)
    out.graph.initializer.append(onnx.numpy_helper.from_array(perm, "swap_yx_perm"))
    out.graph.node.insert(list(out.graph.node).index(conv) + 1,
                          onnx.helper.make_node("Gather", [name, "swap_yx_perm"], [f"{name}_swapped"], axis=1))
    return out


@pytest.mark.parametrize("lowering,opset", [("onnx", 19), ("decompose", 16)])
def test_negative_control_swapped_offsets_fail(lowering, opset, tmp_path):
    module = UserDeform()
    model = export(module, lowering, opset, "torchscript", tmp_path)
    max_errors(model, module)
    with pytest.raises(AssertionError, match="Not equal to tolerance") as failed:
        max_errors(swap_offset_yx(model, 18), module)
    print(lowering, opset, "swapped Δy/Δx:", str(failed.value).split("Max absolute difference")[1].split("\n")[0])


# -- forms, onnxsim, registration lifetime, bad input --------------------------------------------------------


@pytest.mark.parametrize("lowering,opset", [("onnx", 19), ("decompose", 17), ("plugin", 13)])
def test_onnxsim_runs_and_keeps_plugin_nodes(lowering, opset, tmp_path):
    import onnxsim

    model = export(UserDeform(), lowering, opset, "torchscript", tmp_path)
    custom = lowering == "plugin"
    with contextlib.redirect_stdout(io.StringIO()):
        simplified, ok = onnxsim.simplify(model, check_n=0 if custom else 2, test_input_shapes={"x": [2, 4, 9, 11]})
    assert ok
    assert_form(simplified, lowering)
    if custom:
        before = [n for n in model.graph.node if n.domain == PLUGIN_DOMAIN]
        after = [n for n in simplified.graph.node if n.domain == PLUGIN_DOMAIN]
        assert [list(n.attribute) for n in after] == [list(n.attribute) for n in before]


def test_plugin_fields_match_the_tensorrt_table():
    assert PLUGIN_FIELDS == {"stride": onnx.AttributeProto.INTS, "padding": onnx.AttributeProto.INTS,
                             "dilation": onnx.AttributeProto.INTS, "group": onnx.AttributeProto.INT,
                             "deformable_group": onnx.AttributeProto.INT,
                             "plugin_version": onnx.AttributeProto.STRING,
                             "plugin_namespace": onnx.AttributeProto.STRING}
    good = onnx.helper.make_node(PLUGIN_OP, ["x", "off", "m", "w", "b"], ["y"], domain=PLUGIN_DOMAIN,
                                 **plugin_attributes([1, 1], [1, 1, 1, 1], [1, 1], 1, 1))
    assert check_plugin_node(good) == []
    attrs = plugin_attributes([1, 1], [1, 1, 1, 1], [1, 1], 1, 1)
    attrs["groups"] = attrs.pop("group")
    attrs["stride"] = 1
    bad = onnx.helper.make_node(PLUGIN_OP, ["x", "off", "", "w"], ["y"], domain=PLUGIN_DOMAIN, **attrs)
    problems = " | ".join(check_plugin_node(bad))
    assert "unknown field 'groups' (did you mean 'group'?)" in problems
    assert "missing field 'group' (INT)" in problems
    assert "field 'stride' must be INTS, got INT" in problems and "with a mask" in problems
    with pytest.raises(UsageError, match="symmetric padding"):
        plugin_attributes([1, 1], [1, 1, 2, 1], [1, 1], 1, 1)


def _torchscript_export_without_context(tmp_path) -> None:
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(UserDeform().eval(), (torch.randn(1, 4, 5, 5),), str(tmp_path / "bare.onnx"),
                          dynamo=False, opset_version=19)


def test_symbolic_is_removed_after_the_context_also_on_error(tmp_path):
    with pytest.raises(torch.onnx.errors.UnsupportedOperatorError, match="unrecognized namespace"):
        _torchscript_export_without_context(tmp_path)
    export(UserDeform(), "onnx", 19, "torchscript", tmp_path)
    with pytest.raises(torch.onnx.errors.UnsupportedOperatorError, match="unrecognized namespace"):
        _torchscript_export_without_context(tmp_path)
    with pytest.raises(RuntimeError, match="boom"):
        with deform_conv_export("onnx", 19, "torchscript"):
            raise RuntimeError("boom")
    with pytest.raises(torch.onnx.errors.UnsupportedOperatorError, match="unrecognized namespace"):
        _torchscript_export_without_context(tmp_path)


class WrongChannels(nn.Module):
    def __init__(self, offset_channels: int, mask_channels: int) -> None:
        super().__init__()
        self.offset_conv = nn.Conv2d(4, offset_channels, 3, padding=1)
        self.mask_conv = nn.Conv2d(4, mask_channels, 3, padding=1)
        self.weight = nn.Parameter(torch.randn(6, 4, 3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return deform_conv2d(x, self.offset_conv(x), self.weight, padding=1, mask=self.mask_conv(x))


@pytest.mark.parametrize("exporter,opset", [("torchscript", 17), pytest.param("dynamo", 19, marks=pytest.mark.slow)])
@pytest.mark.parametrize("channels,message", [
    ((20, 9), r"offset.shape\[1\] must be 2·offset_groups·kh·kw = 18: expected .*, got 20"),
    ((18, 8), r"mask.shape\[1\] must be offset_groups·kh·kw = 9: expected .*, got 8")])
def test_wrong_channel_counts_are_usage_errors(exporter, opset, channels, message, tmp_path):
    with pytest.raises(UsageError, match=message):
        export(WrongChannels(*channels), "auto", opset, exporter, tmp_path)
    with pytest.raises(torch.onnx.errors.UnsupportedOperatorError, match="unrecognized namespace"):
        _torchscript_export_without_context(tmp_path)  # the error left no symbolic behind


def test_resolve_and_opset_errors():
    assert LOWERINGS == ("auto", "onnx", "plugin", "decompose")
    assert resolve_deform_lowering("auto", 16) == "decompose" and resolve_deform_lowering("auto", 18) == "decompose"
    assert resolve_deform_lowering("auto", 19) == "onnx" and resolve_deform_lowering("plugin", 13) == "plugin"
    with pytest.raises(UsageError, match=r"deform_conv2d needs opset >= 19 \(onnx\) or >= 16 \(decompose\), or "
                                         r"deform_conv='plugin' .*got opset 13"):
        resolve_deform_lowering("auto", 13)
    with pytest.raises(UsageError, match="from opset 19.*got opset 18"):
        resolve_deform_lowering("onnx", 18)
    with pytest.raises(UsageError, match="from opset 16.*got opset 15"):
        resolve_deform_lowering("decompose", 15)
    with pytest.raises(UsageError, match="did you mean 'plugin'"):
        resolve_deform_lowering("plugn", 17)
    with pytest.raises(UsageError, match="dynamo exporter"):
        with deform_conv_export("decompose", 17, "dynamo"):
            pass


def test_auto_below_opset_16_fails_only_on_a_model_with_deform_conv2d(tmp_path):
    plain = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
    assert node_types(export(plain, "auto", 13, "torchscript", tmp_path)) == {"Conv", "Relu"}
    with pytest.raises(UsageError, match=r"needs opset >= 19 \(onnx\) or >= 16 \(decompose\).*got opset 13"):
        export(UserDeform(), "auto", 13, "torchscript", tmp_path)
    with pytest.raises(UsageError, match="from opset 19"):  # an explicit lowering is refused at once
        export(plain, "onnx", 17, "torchscript", tmp_path)


def test_check_deform_inputs_rules():
    p = check_deform_inputs((2, 8, 9, 11), (6, 4, 3, 3), (2, 72, 9, 11), (2, 36, 9, 11), padding=(1, 1))
    assert (p.groups, p.offset_groups, p.use_mask) == (2, 4, True)
    assert check_deform_inputs((None, 8, None, None), (6, 4, 3, 3), (None, 18, None, None), None).use_mask is False
    with pytest.raises(UsageError, match=r"offset.shape\[2\] must be the conv output size 9"):
        check_deform_inputs((1, 4, 9, 9), (6, 4, 3, 3), (1, 18, 7, 7), None, padding=(1, 1))
    with pytest.raises(UsageError, match="divisible by offset_groups=3"):
        check_deform_inputs((1, 4, 9, 9), (6, 4, 3, 3), (1, 54, 9, 9), None, padding=(1, 1))
    with pytest.raises(UsageError, match="multiple of weight.shape"):
        check_deform_inputs((1, 5, 9, 9), (6, 4, 3, 3), (1, 18, 9, 9), None, padding=(1, 1))


# -- speed: decompose vs onnxruntime's DeformConv on 1x64x56x56, 64->64, 3x3, with mask ----------------------


def _median_ms(model: onnx.ModelProto, x: np.ndarray, threads: int, runs: int = 20) -> float:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    for _ in range(3):
        session.run(None, {"x": x})
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, {"x": x})
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


@pytest.mark.slow
def test_decompose_speed_within_3x_of_deformconv(tmp_path):
    module = UserDeform(64, 64).eval()
    x = torch.randn(1, 64, 56, 56)
    graphs = {lowering: export(module, lowering, 19, "torchscript", tmp_path, 64) for lowering in ("onnx", "decompose")}
    for threads in (1, 0):
        ms = {lowering: _median_ms(g, x.numpy(), threads) for lowering, g in graphs.items()}
        ratio = ms["decompose"] / ms["onnx"]
        print(f"threads={threads or 'default'}: DeformConv {ms['onnx']:.2f} ms, decompose {ms['decompose']:.2f} ms, "
              f"ratio {ratio:.2f}")
        if threads == 1:
            assert ratio < 3.0

"""Localisation: the first PyTorch module a wrong graph gets wrong, and the module whose operator cannot export.

Each check runs on a graph with a real bug (a batch baked into a `Reshape`, a traced-away
branch, a perturbed weight or buffer, an operator with no ONNX export) and stays quiet on
the correct graph, for both exporters (TorchScript at opset 17, dynamo at opset 18).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import attndeploy
from attndeploy.defaults import ONNX_TOL
from attndeploy.localise import (
    Localisation,
    blame_export_error,
    localise_divergence,
    unsupported_op,
)
from attndeploy.localise.graph import index_graph
from attndeploy.parity.inputs import random_input
from attndeploy.truth.eager import EagerModel
from attndeploy.verdict import Budget
from tests.test_torch_lint_hazards import FreqAttnBlog, line_of

EXPORTERS = ("torchscript", "dynamo")


def locate(model, proto, x):
    """`localise_divergence` with the module runs the truth would hand it (fp32 and float64 on `x`)."""
    eager = EagerModel(model.eval(), random_input)
    x = np.ascontiguousarray(x, np.float32)
    return localise_divergence(model, (eager.events(x), eager.events(x, double=True)), proto, x, "input",
                               Budget.float64())


def export(model: nn.Module, x: torch.Tensor, path: Path, exporter: str) -> onnx.ModelProto:
    """`model` exported with batch, H and W dynamic: TorchScript at opset 17, dynamo at 18."""
    model.eval()
    if exporter == "dynamo":
        dim = torch.export.Dim.DYNAMIC
        torch.onnx.export(model, (x,), str(path), dynamo=True, opset_version=18, input_names=["input"],
                          dynamic_shapes=({0: dim, 2: dim, 3: dim},), verbose=False)
    else:
        torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=17, input_names=["input"],
                          dynamic_axes={"input": {0: "n", 2: "h", 3: "w"}})
    return onnx.load(str(path))


def image(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def runs_in_ort(proto: onnx.ModelProto, x: np.ndarray) -> bool:
    try:
        ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"input": x})
    except Exception:  # onnxruntime's own error types
        return False
    return True


def one_line(loc: Localisation) -> str:
    message = loc.message()
    assert "\n" not in message and json.loads(json.dumps(loc.to_dict()))["message"] == message
    return message


# --- a blog MLCA whose batch the exporters bake ---------------------------------------------------------

class MLCALen(nn.Module):
    """MLCA-style local + global channel attention, written as blog copies are: ``b = len(x)``.

    x (N, C, H, W) -> (N, C, H, W). Traced at N == 1, `len(x)` is a Python 1: every
    ``.view(b, ...)`` gets a constant target shape.
    """

    def __init__(self, in_size: int, local_size: int = 5, local_weight: float = 0.5) -> None:
        super().__init__()
        t = int(abs(math.log(in_size, 2) + 1) / 2)
        k = t if t % 2 else t + 1
        self.local_size, self.local_weight = local_size, local_weight
        self.conv = nn.Conv1d(1, 1, k, padding=(k - 1) // 2, bias=False)
        self.conv_local = nn.Conv1d(1, 1, k, padding=(k - 1) // 2, bias=False)

    def batch(self, x: torch.Tensor) -> int:
        return len(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, c, m, n = x.size()
        b, s = self.batch(x), self.local_size
        local = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False)
        glob = local.mean((2, 3), keepdim=True)
        temp_local = local.view(b, c, -1).transpose(-1, -2).reshape(b, 1, -1)
        temp_global = glob.view(b, c, -1).transpose(-1, -2)
        y_local = self.conv_local(temp_local).reshape(b, s * s, c).transpose(-1, -2).reshape(b, c, s, s)
        y_global = self.conv(temp_global).view(b, c, 1, 1)
        att = y_global.sigmoid() * (1 - self.local_weight) + y_local.sigmoid() * self.local_weight
        return x * F.interpolate(att, size=(m, n), mode="nearest")


class MLCASized(MLCALen):
    """The fix: the batch as ``x.size(0)``, which both exporters keep symbolic."""

    def batch(self, x: torch.Tensor) -> int:
        return x.size(0)


class Net(nn.Module):
    """b1 (conv, bn, relu) -> b2 conv -> b3 attention -> b4 conv: x (N, 3, H, W) -> (N, 8, H, W)."""

    def __init__(self, attn: nn.Module, channels: int = 64) -> None:
        super().__init__()
        self.b1 = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU())
        self.b2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.b3 = attn
        self.b4 = nn.Conv2d(channels, 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b4(self.b3(self.b2(self.b1(x))))


@pytest.fixture(scope="module")
def mlca(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[nn.Module, onnx.ModelProto]]:
    out = tmp_path_factory.mktemp("mlca")
    torch.manual_seed(0)
    graphs = {}
    for name, attn, exporter in (("dynamo", MLCALen(64), "dynamo"), ("fixed", MLCASized(64), "dynamo"),
                                 ("torchscript", MLCALen(64), "torchscript")):
        model = Net(attn).eval()
        graphs[name] = (model, export(model, torch.rand(1, 3, 20, 20), out / f"{name}.onnx", exporter))
    return graphs


def test_dynamo_baked_batch_names_the_module_and_the_reshape(mlca: dict) -> None:
    model, proto = mlca["dynamo"]
    x = image(2, 3, 20, 20)
    assert runs_in_ort(proto, image(1, 3, 15, 11)) and not runs_in_ort(proto, x)  # wrong only at batch 2
    loc = locate(model, proto, x)
    assert loc is not None and (loc.path, loc.cls, loc.kind) == ("b3", "MLCALen", "runtime")
    assert loc.line == line_of(MLCALen, "class MLCALen") and loc.file.endswith("test_localise.py")
    message = one_line(loc)
    assert message.startswith(f"fails first at `b3` (MLCALen, test_localise.py:{loc.line}): onnxruntime fails at")
    assert "has the constant target shape [1, 64, -1]" in message and "the batch baked in by the exporter" in message
    assert "write .view(x.size(0), ...)" in message
    assert all(n.startswith("node_") for n, _ in loc.nodes) and ("node_view", "Reshape") in loc.nodes


def test_correct_mlca_graph_is_not_blamed(mlca: dict) -> None:
    model, proto = mlca["fixed"]
    for shape in ((2, 3, 20, 20), (3, 3, 15, 11)):
        assert locate(model, proto, image(*shape)) is None


def test_torchscript_baked_batch_is_named_where_it_first_differs(mlca: dict) -> None:
    model, proto = mlca["torchscript"]
    assert locate(model, proto, image(1, 3, 20, 20)) is None
    loc = locate(model, proto, image(2, 3, 20, 20))
    assert loc is not None and (loc.path, loc.kind, loc.child) == ("b3", "input", "b3.conv_local")
    assert loc.shape == (2, 1, 1600) and loc.got_shape == (1, 1, 3200)  # the batch folded into the length
    message = one_line(loc)
    assert "what it passes to `b3.conv_local`" in message and "Reshape /b3/Reshape_1 has the constant target shape [1, 1, -1]" in message
    assert loc.matched == loc.compared - 1 >= 8  # b1 (conv+bn folded), b2 ... all matched first


def test_pipeline_rejected_graph_localises(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Net(MLCALen(64)).eval()
    res = attndeploy.export(model, (1, 3, 20, 20), tmp_path / "mlca.onnx", opset=17, dynamic=True,
                            parity_shapes=[(1, 3, 20, 20), (2, 3, 20, 20)])
    assert not res.parity.passed and res.onnx_path.name == "mlca.rejected.onnx"
    loc = locate(model, onnx.load(str(res.onnx_path)), image(2, 3, 20, 20))
    assert loc is not None and loc.path == "b3" and "batch baked in" in loc.message()


# --- a branch the trace dropped -------------------------------------------------------------------------

def test_dropped_branch_is_named(tmp_path: Path) -> None:
    model = Net(FreqAttnBlog(16), channels=16).eval()
    proto = export(model, torch.rand(1, 3, 7, 7), tmp_path / "freq.onnx", "torchscript")
    assert locate(model, proto, image(2, 3, 7, 7)) is None
    loc = locate(model, proto, image(1, 3, 14, 14))
    assert loc is not None and (loc.path, loc.cls, loc.kind) == ("b3", "FreqAttnBlog", "runtime")
    assert loc.failed_node == "/b3/Mul" and "7 by 14" in loc.error
    assert "a Python branch on a size" in one_line(loc)


# --- numeric divergence in nested modules ---------------------------------------------------------------

class Gate(nn.Module):
    """Squeeze-excite gate: x (N, C, H, W) -> x * sigmoid(fc(mean(x))), fc: 1x1 convs C -> C/4 -> C."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc = nn.Sequential(nn.Conv2d(channels, channels // 4, 1), nn.ReLU(), nn.Conv2d(channels // 4, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x.mean((2, 3), keepdim=True)).sigmoid()


class Block(nn.Module):
    """x + gate(relu(bn(conv(x * scale)))): the scaling is the block's own code, between its children."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.rand(1, channels, 1, 1) + 0.5)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels)
        self.attn = Gate(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.attn(torch.relu(self.bn(self.conv(x * self.scale))))


class Stages(nn.Module):
    def __init__(self, channels: int = 16) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, channels, 3, padding=1)
        self.stages = nn.Sequential(Block(channels), Block(channels))
        self.head = nn.Conv2d(channels, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


@pytest.fixture(scope="module")
def stages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[nn.Module, onnx.ModelProto]]:
    out = tmp_path_factory.mktemp("stages")
    torch.manual_seed(0)
    model = Stages().eval()
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    return {e: (model, export(model, torch.rand(1, 3, 16, 16), out / f"{e}.onnx", e)) for e in EXPORTERS}


def perturbed(model: nn.Module, proto: onnx.ModelProto, scopes: tuple[str, ...], op_type: str) -> onnx.ModelProto:
    """A copy of `proto` where the first `op_type` node emitted by one of `scopes` has its weight's first row + 0.5."""
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    index = index_graph(copy, dict(model.named_modules()))
    weights = {t.name: t for t in copy.graph.initializer}
    node = next(n for n, s in zip(copy.graph.node, index.scopes) if s in scopes and n.op_type == op_type)
    tensor = weights[next(t for t in node.input if t in weights)]
    value = onnx.numpy_helper.to_array(tensor).copy()
    value.reshape(value.shape[0] if value.ndim > 1 else 1, -1)[0] += 0.5
    tensor.CopyFrom(onnx.numpy_helper.from_array(value, tensor.name))
    return copy


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_innermost_diverging_module_is_named(stages: dict, exporter: str) -> None:
    model, proto = stages[exporter]
    x = image(2, 3, 12, 20)
    assert locate(model, proto, x) is None
    wrong = perturbed(model, proto, ("stages.1.attn.fc.2",), "Conv")
    loc = locate(model, wrong, x)
    assert loc is not None and (loc.path, loc.cls, loc.kind) == ("stages.1.attn.fc.2", "Conv2d", "output")
    assert loc.max_abs > ONNX_TOL.atol and len(loc.index) == 4 and loc.shape == (2, 16, 1, 1)
    assert one_line(loc).startswith("diverges first at `stages.1.attn.fc.2` (Conv2d, conv.py:")
    assert [op for _, op in loc.nodes] == ["Conv"] and loc.compared == loc.matched + 1


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_a_parents_own_code_is_blamed_before_its_child(stages: dict, exporter: str) -> None:
    model, proto = stages[exporter]
    wrong = perturbed(model, proto, ("stages.1",), "Mul")  # x * self.scale, in Block's own forward
    loc = locate(model, wrong, image(2, 3, 12, 20))
    assert loc is not None and (loc.path, loc.cls, loc.kind, loc.child) == ("stages.1", "Block", "input",
                                                                             "stages.1.conv")
    assert "in what it passes to `stages.1.conv`" in one_line(loc) and loc.line == line_of(Block, "class Block")


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_batchnorm_folded_into_its_conv_is_said(stages: dict, exporter: str) -> None:
    model, proto = stages[exporter]
    wrong = perturbed(model, proto, ("stages.0.conv", "stages.0.bn"), "Conv")  # the fused Conv's weight
    loc = locate(model, wrong, image(2, 3, 12, 20))
    assert loc is not None and loc.kind == "output"
    owner = {"torchscript": "stages.0.conv", "dynamo": "stages.0.bn"}[exporter]  # where each names the fused node
    assert loc.path == owner and {loc.path, *loc.folded} == {"stages.0.conv", "stages.0.bn"}
    assert "folded in by the exporter" in one_line(loc)


# --- export fails on an operator ------------------------------------------------------------------------

class DiagMix(nn.Module):
    """Channel scaling through a diagonal matrix: x (N, C, H, W) -> (N, C, H, W)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.rand(channels) + 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mix = torch.diag(self.scale)  # (C, C)
        return torch.einsum("oc,nchw->nohw", mix, x)


class SVDGate(nn.Module):
    """Gates each channel by the largest singular value of its feature map rows: (N, C, H, W) -> same."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top = torch.linalg.svdvals(x)[..., :1]  # (N, C, 1)
        return x * top[..., None].sigmoid()


class Head(nn.Module):
    def __init__(self, channels: int, proj: nn.Module) -> None:
        super().__init__()
        self.pre = nn.Conv2d(channels, channels, 1)
        self.proj = proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.pre(x))


class Detector(nn.Module):
    def __init__(self, proj: nn.Module, channels: int = 8) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, channels, 3, padding=1)
        self.head = Head(channels, proj)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stem(x))


def export_error(model: nn.Module, x: torch.Tensor, path: Path, exporter: str) -> str:
    with pytest.raises(Exception) as info:  # noqa: PT011  (each exporter raises its own type)
        export(model, x, path, exporter)
    return str(info.value)


def test_torchscript_unsupported_operator_names_the_module(tmp_path: Path) -> None:
    model, x = Detector(DiagMix(8)).eval(), torch.rand(1, 3, 8, 8)
    error = export_error(model, x, tmp_path / "diag.onnx", "torchscript")
    line = line_of(DiagMix.forward, "torch.diag(")
    assert blame_export_error(model, x, error) == (
        f"`head.proj` (DiagMix, test_localise.py:{line}) calls aten::diag, which has no ONNX export at opset 17")
    assert blame_export_error(Detector(nn.Identity()), x, error) is None  # no module calls it
    assert blame_export_error(model, x, "Exporting failed: the graph is empty") is None  # no operator named


def test_dynamo_unsupported_operator_names_the_module(tmp_path: Path) -> None:
    model, x = Detector(SVDGate()).eval(), torch.rand(1, 3, 8, 8)
    error = export_error(model, x, tmp_path / "svd.onnx", "dynamo")
    line = line_of(SVDGate.forward, "torch.linalg.svdvals(")
    assert blame_export_error(model, x, error) == (f"`head.proj` (SVDGate, test_localise.py:{line}) calls "
                                                  "aten::_linalg_svd, which has no ONNX function in the dynamo exporter")


def test_operator_is_read_from_each_exporters_wording() -> None:
    torchscript = unsupported_op("Exporting the operator 'aten::diag' to ONNX opset version 17 is not supported")
    assert torchscript is not None and (torchscript.qualified, torchscript.opset) == ("aten::diag", 17)
    dynamo = unsupported_op("DispatchError: No ONNX function found for <OpOverload(op='aten._linalg_svd', "
                            "overload='default')>. Failure message: No decompositions registered")
    assert dynamo is not None and (dynamo.qualified, dynamo.opset) == ("aten::_linalg_svd", None)
    translating = unsupported_op("Error when translating node %histc : [num_users=1] = call_function["
                                 "target=torch.ops.aten.histc.default](args = (%x, 4), kwargs = {})")
    assert translating is not None and translating.qualified == "aten::histc"
    assert "failed to translate" in translating.reason and unsupported_op("out of memory") is None


# --- mapping nodes to module paths ---------------------------------------------------------------------

class SharedMLP(nn.Module):
    """Calls a grandchild (`gate.mlp`) itself, twice: TorchScript names its nodes /mlp/mlp.0 and /mlp/mlp.0_1."""

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.gate = nn.Module()
        self.gate.mlp = nn.Sequential(nn.Linear(channels, channels // 2), nn.ReLU(), nn.Linear(channels // 2, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mlp = self.gate.mlp
        return x * (mlp(x.mean((2, 3))) + mlp(x.amax((2, 3))))[:, :, None, None].sigmoid()


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_nodes_map_to_module_paths_across_the_call_stack(tmp_path: Path, exporter: str) -> None:
    from attndeploy.lint.scopes import short_name
    from attndeploy.module_events import record_events

    assert (short_name("gate.mlp.0"), short_name("gate.mlp"), short_name("layer3.1.0")) == ("mlp.0", "mlp", "layer3.1.0")
    model = SharedMLP().eval()
    proto = export(model, torch.rand(1, 8, 4, 4), tmp_path / "shared.onnx", exporter)
    run = record_events(model, torch.rand(2, 8, 4, 4))
    index = index_graph(proto, run.modules, run.calls)
    linears = [(s, n.op_type) for n, s in zip(proto.graph.node, index.scopes) if n.op_type in ("Gemm", "MatMul")]
    assert [s for s, _ in linears] == ["gate.mlp.0", "gate.mlp.2"] * 2  # both calls, each resolved to the module
    wrong = perturbed(model, proto, ("gate.mlp.2",), linears[1][1])
    loc = locate(model, wrong, image(2, 8, 4, 4))
    assert loc is not None and loc.path == "gate.mlp.2"

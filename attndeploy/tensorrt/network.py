"""The network steps of a build that stay ours: parsing with per-node errors, and pinning layers to fp32.

Both are Polygraphy-style loaders (callables) that slot into Polygraphy's chain:

    network = PostprocessNetwork(ParseOnnx(onnx_bytes, model, strongly_typed=False), PinFp32(pins))
    EngineBytesFromNetwork(network, CreateConfig(...))()

`ParseOnnx` creates the network with Polygraphy's `CreateNetwork` (explicit batch below
TensorRT 10, STRONGLY_TYPED when asked) and parses itself, so a refused model reports every
parser error with its node and the PyTorch module that emitted it (Polygraphy's
`NetworkFromOnnxBytes` only logs the errors). `PinFp32` applies `precision.apply_fp32_plan`
and remembers the pinned layer names for the engine's sidecar.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import onnx

from attndeploy.errors import CheckFailed
from attndeploy.lint.scopes import module_scope, scope_from_node_name
from attndeploy.precision.plan import Fp32Pin
from attndeploy.tensorrt._api import dims, dtype_name
from attndeploy.tensorrt.precision import apply_fp32_plan

if TYPE_CHECKING:
    import tensorrt as trt


class EngineBuildFailed(CheckFailed):
    """The parser refused the model, or the builder found no implementation: the artifact is not deployable."""


def parser_errors(parser: trt.OnnxParser, model: onnx.ModelProto) -> list[str]:
    """Every parser error as `node <name> (<op>) in module '<scope>': <description> [<code>]`."""
    nodes = list(model.graph.node)
    lines = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        index = int(err.node())
        node = nodes[index] if 0 <= index < len(nodes) else None
        name = str(err.node_name()) if hasattr(err, "node_name") else ""  # node_name/node_operator: TensorRT >= 9.1
        op = str(err.node_operator()) if hasattr(err, "node_operator") else ""
        name = name or (node.name if node is not None else "")
        op = op or (node.op_type if node is not None else "")
        scope = module_scope(node) if node is not None else (scope_from_node_name(name) or "")
        where = f"node {name or '#' + str(index)} ({op or '?'})" + (f" in module '{scope}'" if scope else "")
        lines.append(f"{where}: {err.desc()} [{err.code()}]")
    return lines


def describe_io(network: trt.INetworkDefinition) -> list[dict[str, Any]]:
    """Name, mode, dtype and shape (-1 = dynamic) of every network input and output."""
    io: list[dict[str, Any]] = []
    for mode, count, get in (("input", network.num_inputs, network.get_input),
                             ("output", network.num_outputs, network.get_output)):
        for i in range(count):
            tensor = get(i)
            io.append({"name": tensor.name, "mode": mode, "dtype": dtype_name(tensor.dtype),
                       "shape": list(dims(tensor.shape))})
    return io


def lint_target(major: int) -> str:
    """The `attndeploy lint --trt` target closest to TensorRT `major`."""
    return "8.6" if major < 10 else "10" if major == 10 else "11"


class ParseOnnx:
    """Loader: `() -> (builder, network, parser)` for `model_bytes` (the serialized `model`).

    `strongly_typed` marks the network STRONGLY_TYPED; `source` names the file for the
    parser (external weights) and the messages; `major` picks the lint hint. After a call,
    `io` describes the network's inputs and outputs.
    """

    def __init__(self, model_bytes: bytes, model: onnx.ModelProto, strongly_typed: bool, source: str = "model.onnx",
                 major: int = 10) -> None:
        self.model_bytes, self.model, self.strongly_typed = model_bytes, model, strongly_typed
        self.source, self.major = source, major
        self.io: list[dict[str, Any]] = []

    def __call__(self) -> tuple[trt.Builder, trt.INetworkDefinition, trt.OnnxParser]:
        import tensorrt as trt
        from polygraphy.backend.trt import CreateNetwork
        from polygraphy.backend.trt import util as polygraphy_trt

        builder, network = CreateNetwork(strongly_typed=self.strongly_typed)()
        logger = polygraphy_trt.get_trt_logger()
        trt.init_libnvinfer_plugins(logger, "")  # TensorRT's own plugins (ModulatedDeformConv2d, ...)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(self.model_bytes, self.source):
            errors = parser_errors(parser, self.model)
            name = self.source.rsplit("/", 1)[-1]
            raise EngineBuildFailed(f"TensorRT {trt.__version__}'s ONNX parser refused {name} ({len(errors)} error(s); "
                                    f"`attndeploy lint {self.source} --trt {lint_target(self.major)}` explains most):"
                                    "\n  " + "\n  ".join(errors))
        self.io = describe_io(network)
        return builder, network, parser


class PinFp32:
    """`PostprocessNetwork` step: pin the layers of `pins`' nodes to fp32; `pinned` holds their names after a call."""

    __name__ = "pin_fp32"  # Polygraphy names the step after it

    def __init__(self, pins: Sequence[Fp32Pin]) -> None:
        self.pins = tuple(pins)
        self.pinned: list[str] = []

    def __call__(self, network: trt.INetworkDefinition) -> None:
        self.pinned = apply_fp32_plan(network, self.pins)

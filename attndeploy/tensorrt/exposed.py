"""Module-boundary tensors as TensorRT computes them: the graph built once more with them marked as outputs.

    graph = exposed_engine_values(Path("cbam.onnx"), names, "input", x)   # localise.graph.GraphRun
    graph.values["/cbam/channel/mlp/Relu_output_0"]                     # what the engine computes there

`attndeploy verify --backend tensorrt` runs this when the engine fails the verdict: the same
graph, built as `build_engine.sh` builds it (the graph's precision, strongly typed where the
TensorRT wants it: `plan.plan_build`, Polygraphy's loaders) for one input shape, with the
floating-point tensors among `names` marked as network outputs (`MarkOutputs`, a Polygraphy
`PostprocessNetwork` step). Marking outputs keeps TensorRT from fusing across them, so a
divergence seen here is TensorRT's on these layers, not necessarily the fused engine's:
the report says which engine the values came from.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from attndeploy.localise.graph import GraphRun
from attndeploy.precision.plan import graph_precision
from attndeploy.runtimes.feeds import InputProfile
from attndeploy.tensorrt._api import major_version, require_tensorrt
from attndeploy.tensorrt.builder import run_plan
from attndeploy.tensorrt.options import BuildOptions
from attndeploy.tensorrt.plan import plan_build
from attndeploy.tensorrt.profiles import Profile, read_onnx
from attndeploy.tensorrt.runner import TensorRTRunner

if TYPE_CHECKING:
    import tensorrt as trt


class MarkOutputs:
    """`PostprocessNetwork` step: mark the floating-point tensors among `names` as network outputs; `marked` holds the
    names marked after a call (a tensor the parser folded away, or an integer one, is left out)."""

    __name__ = "mark_outputs"  # Polygraphy names the step after it

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        self.marked: list[str] = []

    def __call__(self, network: trt.INetworkDefinition) -> None:
        import tensorrt as trt

        floating = {trt.float32, trt.float16, getattr(trt, "bfloat16", trt.float16)}
        wanted = set(self.names)
        for i in range(network.num_layers):
            layer = network.get_layer(i)
            for j in range(layer.num_outputs):
                tensor = layer.get_output(j)
                if tensor.name in wanted and tensor.dtype in floating and not tensor.is_network_output:
                    network.mark_output(tensor)
                    self.marked.append(tensor.name)


def exposed_engine_values(onnx_path: Path, names: Sequence[str], input_name: str, x: np.ndarray) -> GraphRun:
    """Build `onnx_path` for `x`'s shape with `names` marked as outputs, run it on `x`; the values by tensor name.

    `UsageError` without TensorRT; `EngineBuildFailed` when the marked network does not build.
    """
    from polygraphy.backend.trt import EngineBytesFromNetwork, PostprocessNetwork

    major = major_version(require_tensorrt())
    onnx_bytes, model = read_onnx(Path(onnx_path))
    precision = graph_precision(model)
    options = BuildOptions(precision=precision, precision_in_graph=precision != "fp32")
    shape = tuple(int(d) for d in x.shape)
    profile = Profile((InputProfile(input_name, shape, shape, shape),))
    plan = plan_build(onnx_bytes, model, profile, options, major, str(onnx_path))
    marking = MarkOutputs(names)
    marked = PostprocessNetwork(plan.network, marking, "mark_outputs")
    plan = dataclasses.replace(plan, network=marked, engine=EngineBytesFromNetwork(marked, plan.config))
    engine, _ = run_plan(plan, f"{Path(onnx_path).name} with its module tensors marked as outputs")
    with tempfile.TemporaryDirectory(prefix="attndeploy-exposed-") as folder:
        path = Path(folder) / "exposed.engine"
        path.write_bytes(engine)
        with TensorRTRunner(path, require_metadata=False) as runner:
            values = runner.infer({input_name: x})
    return GraphRun({input_name: x, **values})


__all__ = ["MarkOutputs", "exposed_engine_values"]

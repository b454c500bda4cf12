"""The typed state the pipeline's stages read and fill, in stage order.

Each stage reads what earlier stages left (`settings` first) and sets its own fields; a
stage stops the run by raising `CheckFailed` (a finding: exit 1) or `UsageError` (bad
input: exit 2). `seconds` holds each stage's wall time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from attndeploy.adapters.base import Prepared, TaskCheck
from attndeploy.convert import Swap
from attndeploy.exporting.simplify import SimplifyReport
from attndeploy.lint.torch_lint import TorchFinding
from attndeploy.localise import Localisation
from attndeploy.parity.check import EagerRuns, Probe
from attndeploy.parity.compare import ParityReport
from attndeploy.parity.inputs import InputPlan
from attndeploy.parity.noise import NoiseMeter
from attndeploy.parity.shape_rules import ShapeRule
from attndeploy.rewrites import RewriteLog
from attndeploy.settings import ExportSettings
from attndeploy.spec import ModuleSpec

Log = Callable[[str], None]


@dataclass
class Graph:
    """One ONNX graph the run produced: the fp32 export, or a reduced-precision copy of it."""

    precision: str
    proto: onnx.ModelProto
    path: Path                 # where it is written when it passes (`.rejected.onnx` beside it otherwise)
    runnable: bytes            # what onnxruntime runs (plugin nodes swapped for standard ops)


@dataclass
class PipelineState:
    settings: ExportSettings
    log: Log
    # prepare
    name: str = ""
    truth: nn.Module | None = None            # a private eval-mode copy of the user's model: the eager truth
    deploy: nn.Module | None = None           # the truth with deploy twins swapped in: what is exported
    spec: ModuleSpec | None = None
    adapter: Prepared | None = None           # what the model family's adapter did (names, axes, metadata)
    example: torch.Tensor | None = None
    inputs: InputPlan | None = None          # how parity inputs are made (image-like, N(0, 1), the user's data)
    eager: EagerRuns | None = None           # the truth, run once per shape
    output_names: list[str] = field(default_factory=list)
    output_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)   # at the example, by graph name
    input_name: str = "input"
    dynamic_axes: list[int] = field(default_factory=list)            # of the input
    output_axes: dict[str, tuple[int, ...]] = field(default_factory=dict)   # absent: every dim dynamic
    swaps: list[Swap] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # evidence: what the model accepts, how noisy its fp32 is
    rule: ShapeRule | None = None
    noise: NoiseMeter | None = None          # the model's fp32 noise at each probe
    # lint
    findings: list[TorchFinding] = field(default_factory=list)
    # export (+ file verification) and simplify
    exporter: str = ""
    route: str = ""                          # how the graph was made, e.g. "torchscript-17+version-converter"
    proto: onnx.ModelProto | None = None     # the exported fp32 graph, verified (simplified by `simplify`)
    exported: onnx.ModelProto | None = None  # the export before onnxsim (its node names map to modules)
    warnings: list[str] = field(default_factory=list)
    rewrites: RewriteLog | None = None
    simplify: SimplifyReport | None = None
    graphs: list[Graph] = field(default_factory=list)   # [fp32, then fp16 / int8 when asked]
    # parity
    probes: list[Probe] = field(default_factory=list)
    parity: dict[str, ParityReport] = field(default_factory=dict)   # "<precision>/<backend>" -> report
    tasks: dict[str, TaskCheck] = field(default_factory=dict)       # "<precision>" -> the adapter's task check
    localisation: Localisation | None = None                        # the first diverging module, where parity failed
    # engine
    engine: Any = None                       # attndeploy.tensorrt.deploy.EngineReport
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        assert self.example is not None  # set by prepare, which every run starts with
        return tuple(self.example.shape)

    @property
    def fp32(self) -> Graph:
        return self.graphs[0]

    @property
    def final(self) -> Graph:
        """The graph the result hands back: the reduced-precision one when asked for, else fp32."""
        return self.graphs[-1]

"""The pipeline's engine stage: build the engine for an exported graph and judge it against the eager truth.

    >>> report = engine_for_export(Path("models/cbam/cbam.onnx"), EngineSettings(), truth_data,
    ...                            rule=(spec.hw_multiple, spec.min_hw))
    >>> report.passed, report.build.engine_path, report.parity.max_abs_err

`truth` holds the export's probes (inputs with eager fp32 and float64 outputs,
`attndeploy.verdict.TruthData`); the first one's shape is the export's example: the
profile's opt. Probes outside the profile (narrowed with `EngineSettings.min` / `max`) are
skipped and listed. A graph that already carries its precision (a mixed fp16 graph, or Q/DQ
int8: `<name>.fp16.onnx`, `<name>.int8.onnx`) builds in that precision (strongly typed
where the TensorRT wants it); an fp32 graph builds fp32 (TF32 off): the engine's precision is always
the graph's (`--precision fp16 --engine`). The engine is judged
by the same judge and budget as its graph in onnxruntime (`engine_budget`): fp32 by the
float64-anchored rule, fp16 and int8 by their cosine floors, every value finite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from attndeploy.errors import require
from attndeploy.precision.plan import graph_precision
from attndeploy.settings import EngineSettings
from attndeploy.shapes import format_shape
from attndeploy.tensorrt._api import require_tensorrt
from attndeploy.tensorrt.builder import BuildResult, build_engine, engine_path_for
from attndeploy.tensorrt.options import BuildOptions
from attndeploy.tensorrt.profiles import Profile, ShapeRule, derive_profile, read_onnx
from attndeploy.tensorrt.runner import TensorRTRunner
from attndeploy.verdict import Budget, TruthData, Verdict, judge
from attndeploy.verdict.budget import reduced_budget

Log = Callable[[str], None]


@dataclass
class EngineReport:
    """The build, its optimization profile, and the verdict on the engine against the truth."""

    build: BuildResult
    profile: Profile
    parity: Verdict
    skipped_shapes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.parity.shapes) and self.parity.passed

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, **self.build.to_dict(), "profile": self.profile.to_dict(),
                "parity": self.parity.to_dict(), "skipped_shapes": self.skipped_shapes}


def engine_options(engine: EngineSettings, model: onnx.ModelProto) -> BuildOptions:
    """Build options for `engine` over `model`: the engine is built at the graph's own precision."""
    found = graph_precision(model)
    return BuildOptions(precision=found, precision_in_graph=found != "fp32", workspace_mb=engine.workspace_mb,
                        timing_cache=engine.timing_cache, plugins=engine.plugins)


def engine_budget(precision: str) -> Budget:
    """The budget an engine of `precision` is judged by: its graph's in onnxruntime (one judge, one rule)."""
    return Budget.float64() if precision == "fp32" else reduced_budget(precision)


def engine_for_export(onnx_path: Path, engine: EngineSettings, truth: TruthData,
                      rule: ShapeRule | None = None, log: Log | None = None) -> EngineReport:
    """Build (or reuse) `<stem>.<precision>.engine` beside `onnx_path` and judge it on `truth`'s probes.

    `rule` = (hw_multiple, min_hw) of the module's spatial sizes (profile minima). Raises
    `UsageError` (no TensorRT or GPU, bad settings) and `EngineBuildFailed`.
    """
    require_tensorrt()  # before any work: a missing TensorRT is the first thing to know
    probes = truth.probes
    require(bool(probes), "the engine check needs the truth's probes", "at least one probe (the export's example)",
            "none")
    onnx_path = Path(onnx_path)
    _, model = read_onnx(onnx_path)
    hw_multiple, min_hw = rule or (1, 1)
    profile = derive_profile(model, probes[0].shape, min=engine.min, opt=engine.opt, max=engine.max,
                             hw_multiple=hw_multiple, min_hw=min_hw)
    options = engine_options(engine, model)
    build = build_engine(onnx_path, engine_path_for(onnx_path, options.precision), options, profile=profile,
                         rebuild=engine.rebuild, log=log)
    bounds = profile.inputs[0]
    inside = [p for p in probes if bounds.contains(p.shape)]
    skipped = [format_shape(p.shape) for p in probes if not bounds.contains(p.shape)]
    with TensorRTRunner(build.engine_path) as runner:
        verdict = judge(inside, lambda x: list(runner.infer({bounds.name: x}).values()), runner.output_names,
                        engine_budget(options.precision), (options.precision, "tensorrt"), truth.reference)
    return EngineReport(build, profile, verdict, skipped)

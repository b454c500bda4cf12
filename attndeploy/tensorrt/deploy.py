"""The pipeline's engine stage: build the engine for an exported graph and check it against the eager truth.

    >>> report = engine_for_export(Path("models/cbam/cbam.fp16.onnx"), EngineSettings(), probes,
    ...                            rule=(spec.hw_multiple, spec.min_hw))
    >>> report.passed, report.build.engine_path, report.parity.max_abs_err

`probes` are the export's parity inputs with the eager outputs on them (`parity.make_probes`);
the first one's shape is the export's example: the profile's opt. Probes outside the
profile (narrowed with `EngineSettings.min` / `max`) are skipped and listed. A graph that
already carries its precision (a mixed fp16 graph, or Q/DQ int8: `<name>.fp16.onnx`,
`<name>.int8.onnx`) builds in that precision (strongly typed where the TensorRT wants it);
an fp32 graph builds fp32: the engine's precision is always the graph's (`--precision fp16 --engine`).
Budgets (attndeploy.defaults): fp32 (TF32 off) atol 1e-4 / rtol 1e-3; fp16 atol 1e-2 /
rtol 1e-2 plus cosine >= 0.999; int8 cosine >= 0.99, every value finite.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from attndeploy.defaults import (
    TRT_FP16_MIN_COSINE,
    TRT_FP16_TOL,
    TRT_FP32_TOL,
    TRT_INT8_MIN_COSINE,
    Tolerance,
)
from attndeploy.errors import require
from attndeploy.parity.check import Probe, compare_probes
from attndeploy.parity.compare import ParityReport
from attndeploy.precision.plan import graph_precision
from attndeploy.settings import EngineSettings
from attndeploy.shapes import format_shape
from attndeploy.tensorrt._api import require_tensorrt
from attndeploy.tensorrt.builder import BuildResult, build_engine, engine_path_for
from attndeploy.tensorrt.options import BuildOptions
from attndeploy.tensorrt.profiles import Profile, ShapeRule, derive_profile, read_onnx
from attndeploy.tensorrt.runner import TensorRTRunner

Log = Callable[[str], None]


@dataclass
class EngineReport:
    """The build, its optimization profile, and parity vs eager (plus the cosine floor of reduced precision)."""

    build: BuildResult
    profile: Profile
    parity: ParityReport
    min_cosine: float | None = None
    skipped_shapes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        cosine_ok = self.min_cosine is None or self.parity.min_cosine >= self.min_cosine
        return bool(self.parity.shapes) and self.parity.passed and cosine_ok

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, **self.build.to_dict(), "profile": self.profile.to_dict(),
                "parity": self.parity.to_dict(), "min_cosine": self.min_cosine,
                "skipped_shapes": self.skipped_shapes}


def engine_options(engine: EngineSettings, model: onnx.ModelProto) -> BuildOptions:
    """Build options for `engine` over `model`: the engine is built at the graph's own precision."""
    found = graph_precision(model)
    return BuildOptions(precision=found, precision_in_graph=found != "fp32", workspace_mb=engine.workspace_mb,
                        timing_cache=engine.timing_cache, plugins=engine.plugins)


def parity_budget(precision: str) -> tuple[Tolerance, float | None]:
    """(elementwise tolerance, cosine floor or None) for an engine of `precision` against eager fp32."""
    if precision == "int8":  # per-element bounds mean little after quantization: the cosine floor decides
        return Tolerance(math.inf, math.inf), TRT_INT8_MIN_COSINE
    if precision == "fp16":
        return TRT_FP16_TOL, TRT_FP16_MIN_COSINE
    return TRT_FP32_TOL, None


def engine_for_export(onnx_path: Path, engine: EngineSettings, probes: Sequence[Probe],
                      rule: ShapeRule | None = None, log: Log | None = None) -> EngineReport:
    """Build (or reuse) `<stem>.<precision>.engine` beside `onnx_path` and compare it with `probes`.

    `rule` = (hw_multiple, min_hw) of the module's spatial sizes (profile minima). Raises
    `UsageError` (no TensorRT or GPU, bad settings) and `EngineBuildFailed`.
    """
    require_tensorrt()  # before any work: a missing TensorRT is the first thing to know
    require(bool(probes), "the engine check needs parity probes", "at least one Probe (the export's example)", "none")
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
    tol, min_cosine = parity_budget(options.precision)
    with TensorRTRunner(build.engine_path) as runner:
        parity = compare_probes(inside, lambda x: list(runner.infer({bounds.name: x}).values()),
                                runner.output_names, tol, f"tensorrt-{options.precision}")
    return EngineReport(build, profile, parity, min_cosine, skipped)

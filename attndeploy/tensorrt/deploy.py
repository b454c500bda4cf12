"""`export --engine`: build the engine for an exported ONNX model and check it against eager PyTorch.

    >>> res = attndeploy.export("cbam", None, "models/cbam/cbam.onnx")
    >>> report = engine_for_export(res.onnx_path, model, res.input_shape, spec=attndeploy.get_spec("cbam"),
    ...                            fp16=True)
    >>> report.passed, report.build.engine_path, report.parity.max_abs_err

Parity runs at the export shape and the registry's sweep (batch > 1, odd and
non-square H, W), inside the optimization profile, with the architecture's tolerances:
fp32 (TF32 off) atol 1e-4 / rtol 1e-3; fp16 atol 1e-2 / rtol 1e-2 plus cosine >= 0.999.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from attndeploy.parity import ParityReport, check_parity
from attndeploy.registry import ModuleSpec, Tolerance
from attndeploy.shapes import Shape, format_shape, sweep_shapes
from attndeploy.tensorrt._api import require_tensorrt
from attndeploy.tensorrt.builder import (
    DEFAULT_WORKSPACE_MB,
    BuildResult,
    build_engine,
    engine_path_for,
)
from attndeploy.tensorrt.precision import KEEP_FP32_OPS
from attndeploy.tensorrt.profiles import Override, Profile, derive_profile
from attndeploy.tensorrt.runner import TensorRTRunner

TRT_FP32_TOL = Tolerance(1e-4, 1e-3)
TRT_FP16_TOL = Tolerance(1e-2, 1e-2)
FP16_MIN_COSINE = 0.999


@dataclass
class EngineReport:
    """The build, its optimization profile, and parity vs eager (plus the fp16 cosine floor)."""

    build: BuildResult
    profile: Profile
    parity: ParityReport
    min_cosine: float | None = None
    skipped_shapes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        cosine_ok = self.min_cosine is None or all(o.min_cosine >= self.min_cosine for o in self.parity.outputs)
        return self.parity.passed and cosine_ok

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, **self.build.to_dict(), "profile": self.profile.to_dict(),
                "parity": self.parity.to_dict(), "min_cosine": self.min_cosine,
                "skipped_shapes": self.skipped_shapes}


def engine_for_export(
    onnx_path: str | Path,
    model: torch.nn.Module,
    example_shape: Shape,
    *,
    spec: ModuleSpec | None = None,
    fp16: bool = False,
    engine_path: str | Path | None = None,
    min: Override = None,  # noqa: A002  (mirrors --min)
    opt: Override = None,
    max: Override = None,  # noqa: A002  (mirrors --max)
    parity_shapes: Sequence[Shape] | None = None,
    timing_cache: str | Path | None = None,
    workspace_mb: int = DEFAULT_WORKSPACE_MB,
    plugins: Sequence[str | Path] = (),
    keep_fp32_ops: Iterable[str] = KEEP_FP32_OPS,
    input_name: str = "input",
    seed: int = 0,
    force: bool = False,
    log: Callable[[str], None] | None = None,
) -> EngineReport:
    """Build `<onnx stem>.fp16.engine` (or `.fp32.engine`) beside `onnx_path` and compare it with `model`.

    `model` is the eager module the ONNX came from (reference or deploy: same outputs);
    `example_shape` (N, C, H, W) is the export shape and the profile's opt. `spec` gives
    the spatial rule for the profile's minima and the parity sweep. Shapes outside the
    profile (narrowed with `min` / `max`) are skipped and listed in `skipped_shapes`.
    """
    require_tensorrt()  # before any work: a missing TensorRT is the first thing to know
    hw_multiple, min_hw = (spec.hw_multiple, spec.min_hw) if spec else (1, 1)
    profile = derive_profile(onnx_path, {input_name: example_shape}, min=min, opt=opt, max=max,
                             hw_multiple=hw_multiple, min_hw=min_hw)
    engine_path = Path(engine_path) if engine_path is not None else engine_path_for(onnx_path, fp16)
    build = build_engine(onnx_path, engine_path, fp16=fp16, profile=profile, workspace_mb=workspace_mb,
                         timing_cache=timing_cache, plugins=plugins, keep_fp32_ops=keep_fp32_ops, force=force,
                         log=log)
    wanted = list(parity_shapes) if parity_shapes else [tuple(example_shape),
                                                         *sweep_shapes(tuple(example_shape), hw_multiple, min_hw)]
    inside = [s for s in wanted if profile[input_name].contains(s)]
    skipped = [format_shape(s) for s in wanted if s not in inside]
    tol = TRT_FP16_TOL if fp16 else TRT_FP32_TOL
    with TensorRTRunner(build.engine_path) as runner:
        parity = check_parity(model.eval(), lambda x: list(runner.infer({input_name: x}).values()),
                              runner.output_names, inside, tol, f"tensorrt-{'fp16' if fp16 else 'fp32'}", seed)
    return EngineReport(build, profile, parity, FP16_MIN_COSINE if fp16 else None, skipped)

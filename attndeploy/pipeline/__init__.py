"""The one export pipeline: `ExportSettings` in, `ExportResult` out, through small timed stages.

    prepare -> evidence -> lint -> export (+ file checks) -> simplify -> parity (per backend)
            -> [reroute] -> [localise] -> [precision] -> [task] -> write -> [engine]; then report.json where asked

Every command (`export`, recipes, `matrix`, `bench`, `selftest`) and the Python API call
`run_pipeline`; none re-implements a stage. A stage stops the run by raising
`CheckFailed` (a finding, exit 1) or `UsageError` (bad input, exit 2); any other error a
stage lets through becomes a one-line `CheckFailed` naming the stage. A parity failure is
not a stop: the graph is written as `.rejected.onnx` and the result says why. The engine
stage runs only when the graph passed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from attndeploy.errors import CheckFailed, UsageError, first_line
from attndeploy.fileio import write_json_atomic
from attndeploy.pipeline.build import build_result
from attndeploy.pipeline.paths import graph_passed
from attndeploy.pipeline.result import ExportResult
from attndeploy.pipeline.stages.engine import engine
from attndeploy.pipeline.stages.evidence import evidence
from attndeploy.pipeline.stages.export import ExportFailed
from attndeploy.pipeline.stages.export import export as export_stage
from attndeploy.pipeline.stages.lint import lint
from attndeploy.pipeline.stages.parity import failed as parity_failed
from attndeploy.pipeline.stages.parity import localise_failure, parity
from attndeploy.pipeline.stages.precision import precision
from attndeploy.pipeline.stages.precision import wanted as precision_wanted
from attndeploy.pipeline.stages.prepare import prepare
from attndeploy.pipeline.stages.reroute import reroute
from attndeploy.pipeline.stages.reroute import wanted as reroute_wanted
from attndeploy.pipeline.stages.simplify import simplify
from attndeploy.pipeline.stages.task import task
from attndeploy.pipeline.stages.write import write
from attndeploy.pipeline.state import Log, PipelineState
from attndeploy.settings import ExportSettings


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[PipelineState], None]
    wanted: Callable[[PipelineState], bool] = lambda state: True


STAGES: tuple[Stage, ...] = (
    Stage("prepare", prepare),
    Stage("evidence", evidence),
    Stage("lint", lint),
    Stage("export", export_stage),
    Stage("simplify", simplify),
    Stage("parity", parity),
    Stage("reroute", reroute, reroute_wanted),
    Stage("localise", localise_failure, parity_failed),
    Stage("precision", precision, precision_wanted),
    Stage("task", task, lambda s: s.adapter is not None and s.adapter.task_check is not None),
    Stage("write", write),
    Stage("engine", engine, lambda s: s.settings.engine is not None and graph_passed(s, s.final)),
)


def run_pipeline(settings: ExportSettings, log: Log | None = None) -> ExportResult:
    """Run every wanted stage of `STAGES` on `settings`; `log` gets progress lines."""
    state = PipelineState(settings, log or (lambda _msg: None))
    for stage in STAGES:
        if not stage.wanted(state):
            continue
        start = time.perf_counter()
        try:
            stage.run(state)
        except (UsageError, CheckFailed):
            raise
        except Exception as err:  # a raw error from torch, onnx or onnxruntime: one line naming the stage
            where = f" on {state.name}" if state.name else ""
            raise CheckFailed(f"the {stage.name} stage failed{where}: {first_line(err, with_type=True)}") from err
        finally:
            state.seconds[stage.name] = state.seconds.get(stage.name, 0.0) + time.perf_counter() - start
    result = build_result(state)
    report = settings.report_path(state.name)
    if report is not None:
        write_json_atomic(report, result.to_dict())
    return result


def export(model_or_name: nn.Module | str, example_input: Any = None, out_path: str | Path | None = None, *,
           log: Log | None = None, **options: Any) -> ExportResult:
    """Export `model_or_name` to ONNX and check the file against eager PyTorch.

    `model_or_name`: an `nn.Module` (never changed: the run works on a private copy), a
    registry name (a fresh reference module with random non-zero weights from `seed`),
    `pkg.module:factory` or `path/to/file.py[:factory]`. `example_input`: a tensor or a shape
    (default for registry names: the module's example shape). `out_path`: the ONNX file
    (default `models/<name>/<name>.onnx`). `options`: any `ExportSettings` field — `opset=17`,
    `dynamic=True`, `exporter="auto"`, `simplify=True`, `parity_shapes=None`, `seed=0`,
    `name=None`, `deform_conv="auto"`, `rewrites=True`, `atol`/`rtol`, `precision="fp32"|
    "fp16"|"int8"`, `calibration=...`, `engine=EngineSettings(...)` ...

    Reference modules are swapped for their deploy twins before export, the model is linted
    for export hazards, hazardous calls are routed to exact export-friendly forms while
    exporting, and parity compares the written graph in onnxruntime with the *original*
    model's eager outputs on fresh inputs at the example shape and, if dynamic, at a sweep of
    other shapes. A failed parity returns a result with `parity.passed == False` and the
    model written as `<name>.rejected.onnx`.
    """
    return run_pipeline(ExportSettings.create(model_or_name, example_input, out_path, **options), log)


__all__ = ["STAGES", "ExportFailed", "ExportResult", "ExportSettings", "Stage", "export", "run_pipeline"]

"""The one export pipeline: `ExportSettings` in, `ExportResult` out, through small timed stages.

    prepare -> evidence (the Truth) -> lint -> export (routes: export, verify, simplify, judge)
            -> [localise] -> [precision: fp16 / INT8 candidate, judged] -> write -> [bundle] -> [engine, judged]

Every command (`export`, recipes, `matrix`, `bench`, `selftest`, `lint`) and the Python API
call `run_pipeline`; none re-implements a stage. Stages hand their results on as values;
none calls another. The truth is built once (the evidence stage) and every candidate is
judged against it by `attndeploy.verdict.judge`, the only place that decides pass or fail.
A stage stops the run by raising `CheckFailed` (a finding, exit 1) or `UsageError` (bad
input, exit 2); any other error a stage lets through becomes a one-line `CheckFailed`
naming the stage. A failed verdict is not a stop: the graph is written as
`.rejected.onnx` and the result says why. The engine stage runs only when the graph passed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from attndeploy.fileio import write_json_atomic
from attndeploy.lint.torch_lint import TorchFinding
from attndeploy.pipeline.build import Outcome, build_result
from attndeploy.pipeline.candidate import Judged
from attndeploy.pipeline.result import ExportResult
from attndeploy.pipeline.run import Log, Run
from attndeploy.pipeline.stages.bundle import bundle
from attndeploy.pipeline.stages.engine import engine as engine_stage
from attndeploy.pipeline.stages.evidence import evidence
from attndeploy.pipeline.stages.export import ExportFailed
from attndeploy.pipeline.stages.export import export as export_stage
from attndeploy.pipeline.stages.lint import lint
from attndeploy.pipeline.stages.localise import localise
from attndeploy.pipeline.stages.precision import VARIANTS, precision, settings_variant
from attndeploy.pipeline.stages.prepare import prepare
from attndeploy.pipeline.stages.write import write
from attndeploy.settings import ExportSettings

STAGES = ("prepare", "evidence", "lint", "export", "localise", "precision", "write", "bundle", "engine")


def lint_findings(settings: ExportSettings, log: Log | None = None
                  ) -> tuple[str, tuple[int, ...], list[TorchFinding]]:
    """(the model's name, its example shape, its lint findings): the pipeline up to and including its lint stage, as
    `export` runs it."""
    run = Run(settings, log or (lambda _msg: None))
    with run.stage("prepare"):
        model = prepare(run)
    with run.stage("evidence"):
        truth = evidence(run, model)
    with run.stage("lint"):
        return run.name, model.shape, lint(run, model, truth)


def run_pipeline(settings: ExportSettings, log: Log | None = None, also: Sequence[str] = ()) -> ExportResult:
    """Run every wanted stage on `settings`; `log` gets progress lines.

    `also`: further reduced-precision graphs from the same run, named as `VARIANTS` ("fp16", "int8",
    "int8-ort-cpu"), each judged and written (`<stem>.<label>.onnx`) like the settings' own; with `also`
    and `settings.engine`, every graph that passed is built as an engine (a bench or self-test needs
    several from one truth), else the final graph only.
    """
    run = Run(settings, log or (lambda _msg: None))
    with run.stage("prepare"):
        model = prepare(run)
    with run.stage("evidence"):
        truth = evidence(run, model)
    with run.stage("lint"):
        findings = lint(run, model, truth)
    exported = export_stage(run, model, truth, findings)
    fp32 = exported.judged
    graphs: list[Judged] = [fp32]
    localisation = None
    own = [settings_variant(settings)] if settings.precision != "fp32" else []
    variants = own + [VARIANTS[name] for name in dict.fromkeys(also) if VARIANTS[name] not in own]
    if not fp32.passed:
        with run.stage("localise"):
            localisation = localise(run, model, truth, fp32)
    else:
        for variant in variants:
            with run.stage("precision"):
                graphs.append(precision(run, model, truth, fp32, variant))
    final = graphs[1] if own and len(graphs) > 1 else fp32
    with run.stage("write"):
        write(model, graphs)
    device: dict[str, Any] = {}
    if settings.bundle:
        with run.stage("bundle"):
            device = bundle(run, model, truth, [g for g in graphs if g is not final] + [final], final)
    engines = {}
    if settings.engine is not None:
        for judged in graphs if also else [final]:
            if judged.passed:
                with run.stage("engine"):
                    engines[judged.candidate.key] = engine_stage(run, model, truth, judged)
    result = build_result(run, model, truth, Outcome(exported, graphs, final, findings, localisation, engines))
    result.bundle = device
    path = settings.report_path(run.name)
    if path is not None:
        write_json_atomic(path, result.to_dict())
    return result


def export(model_or_name: nn.Module | str, example_input: Any = None, out_path: str | Path | None = None, *,
           log: Log | None = None, **options: Any) -> ExportResult:
    """Export `model_or_name` to ONNX and judge the file against eager PyTorch.

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
    exporting, and the written graph is judged in onnxruntime against the original model's
    eager fp32 and float64 outputs on fresh inputs at the example shape and, if dynamic, at
    a sweep of other shapes inside the model's shape rule. A failed verdict returns a result
    with `passed == False` and the model written as `<name>.rejected.onnx`.
    """
    return run_pipeline(ExportSettings.create(model_or_name, example_input, out_path, **options), log)


__all__ = ["STAGES", "ExportFailed", "ExportResult", "ExportSettings", "export", "lint_findings", "run_pipeline"]

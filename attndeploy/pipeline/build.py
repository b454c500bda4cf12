"""The `ExportResult` of a run, from what its stages returned."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from attndeploy.exporting.verify import node_counts
from attndeploy.lint.torch_lint import TorchFinding
from attndeploy.localise import Localisation
from attndeploy.pipeline.candidate import Judged
from attndeploy.pipeline.model import PreparedModel
from attndeploy.pipeline.result import ExportResult
from attndeploy.pipeline.run import Run
from attndeploy.pipeline.stages.export import Exported
from attndeploy.truth.truth import Truth


def _evidence(model: PreparedModel, truth: Truth, judged: Judged) -> dict[str, Any]:
    rule = truth.rule
    verdict = next(iter(judged.verdicts.values()))
    return {"shape_rule": rule.describe() if rule else None,
            "dynamic_axes": list(judged.candidate.input_axes),
            "inputs": model.inputs.to_dict(),
            "reference": truth.reference,
            "truth_shapes": [p.label for p in truth.probes],
            "truth_bytes": truth.nbytes,
            "postprocess": dict(model.family.postprocess),
            "noise": verdict.noise}


@dataclass
class Outcome:
    """What the stages after the truth handed back: the routes' record, every judged graph (fp32 first), the final
    one, the lint's findings, where a failed fp32 verdict was localised, and the engines by graph label."""

    exported: Exported
    graphs: list[Judged]
    final: Judged
    findings: list[TorchFinding]
    localisation: Localisation | None = None
    engines: dict[str, Any] = field(default_factory=dict)


def build_result(run: Run, model: PreparedModel, truth: Truth, outcome: Outcome) -> ExportResult:
    exported, graphs, final, findings = outcome.exported, outcome.graphs, outcome.final, outcome.findings
    localisation, engines = outcome.localisation, outcome.engines
    fp32 = graphs[0]
    record = exported.record
    primary = final.verdicts[(final.candidate.key, run.settings.backends[0])]
    verdicts = {k: v for judged in graphs for k, v in judged.verdicts.items()}
    tasks = {j.candidate.key: j.task for j in graphs if j.task is not None}
    engine = engines.get(final.candidate.key)
    own = [f for f in findings if f.rewrite is None]
    return ExportResult(
        name=run.name, onnx_path=final.written, opset=run.settings.opset,
        exporter=fp32.candidate.exporter, dynamic=bool(fp32.candidate.input_axes),
        input_shape=model.shape, parity=primary, swaps=model.swaps, simplify=record.simplify,
        node_counts=node_counts(fp32.candidate.proto), warnings=record.warnings + [f"lint: {f.message()}" for f in own],
        seed=run.settings.seed, seconds={k: round(v, 3) for k, v in run.seconds.items()},
        rewrites=record.rewrites.to_dict(), lint=[f.to_dict() for f in findings], parities=verdicts,
        files={j.candidate.key: str(j.written) for j in graphs}, precision=final.candidate.precision,
        engine=engine, engines=engines, notes=list(run.notes), details=list(run.details), tasks=tasks,
        evidence=_evidence(model, truth, fp32),
        route=fp32.candidate.route, localisation=localisation,
        passed=all(j.passed for j in graphs) and all(e.passed for e in engines.values()), truth=truth.data())

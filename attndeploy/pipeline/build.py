"""The `ExportResult` of a run, read from its state."""

from __future__ import annotations

from typing import Any

from attndeploy.exporting.verify import node_counts
from attndeploy.pipeline.paths import written_path
from attndeploy.pipeline.result import ExportResult
from attndeploy.pipeline.state import PipelineState


def _evidence(state: PipelineState) -> dict[str, Any]:
    rule = state.rule
    return {"shape_rule": rule.describe() if rule else None,
            "dynamic_axes": list(state.dynamic_axes),
            "inputs": state.inputs.to_dict() if state.inputs else None,
            "noise": state.noise.summary() if state.noise else None}


def build_result(state: PipelineState) -> ExportResult:
    final = state.final
    primary = state.parity[f"{final.precision}/{state.settings.backends[0]}"]
    findings = [f for f in state.findings if f.rewrite is None]
    return ExportResult(
        name=state.name, onnx_path=written_path(state, final), opset=state.settings.opset, exporter=state.exporter,
        dynamic=bool(state.dynamic_axes), input_shape=state.shape, parity=primary, swaps=state.swaps,
        simplify=state.simplify, node_counts=node_counts(state.fp32.proto),
        warnings=state.warnings + [f"lint: {f.message()}" for f in findings], seed=state.settings.seed,
        seconds={k: round(v, 3) for k, v in state.seconds.items()},
        rewrites=state.rewrites.to_dict() if state.rewrites else {}, lint=[f.to_dict() for f in state.findings],
        parities=dict(state.parity), files={g.precision: str(written_path(state, g)) for g in state.graphs},
        precision=final.precision, engine=state.engine, notes=list(state.notes),
        tasks=dict(state.tasks), evidence=_evidence(state), route=state.route,
        localisation=state.localisation)

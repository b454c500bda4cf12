"""Stage `engine`: a TensorRT engine from the written graph, checked against the same eager truth."""

from __future__ import annotations

from attndeploy.pipeline.paths import written_path
from attndeploy.pipeline.state import PipelineState
from attndeploy.tensorrt.deploy import engine_for_export


def engine(state: PipelineState) -> None:
    settings = state.settings.engine
    assert settings is not None
    rule = (state.spec.hw_multiple, state.spec.min_hw) if state.spec else None
    state.engine = engine_for_export(written_path(state, state.final), settings, state.probes, rule, state.log)

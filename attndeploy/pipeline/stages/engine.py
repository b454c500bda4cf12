"""Stage `engine`: a TensorRT engine from the written graph, checked against the same eager truth."""

from __future__ import annotations

from dataclasses import replace

from attndeploy.pipeline.paths import written_path
from attndeploy.pipeline.state import PipelineState
from attndeploy.tensorrt.deploy import engine_for_export


def engine(state: PipelineState) -> None:
    """The profile's min/opt/max: the settings', else the model family's (a detector's from --imgsz/--batch),
    else derived from the example and the shape rule."""
    settings = state.settings.engine
    assert settings is not None
    family = state.adapter.engine_shapes if state.adapter is not None else None
    if family is not None:
        lo, best, hi = family
        settings = replace(settings, min=settings.min or lo, opt=settings.opt or best, max=settings.max or hi)
    rule = (state.rule.multiple, state.rule.min_hw) if state.rule is not None else None
    state.engine = engine_for_export(written_path(state, state.final), settings, state.probes, rule, state.log)

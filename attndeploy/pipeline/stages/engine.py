"""Stage `engine`: a TensorRT engine from the written graph, judged against the same truth with the graph's budget."""

from __future__ import annotations

from dataclasses import replace

from attndeploy.pipeline.candidate import Judged
from attndeploy.pipeline.model import PreparedModel
from attndeploy.pipeline.run import Run
from attndeploy.tensorrt.deploy import EngineReport, engine_for_export
from attndeploy.truth.truth import Truth


def engine(run: Run, model: PreparedModel, truth: Truth, final: Judged) -> EngineReport:
    """The profile's min/opt/max: the settings', else the model family's (a detector's from --imgsz/--batch),
    else derived from the example and the shape rule."""
    settings = run.settings.engine
    assert settings is not None
    family = model.family.engine_shapes
    if family is not None:
        lo, best, hi = family
        settings = replace(settings, min=settings.min or lo, opt=settings.opt or best, max=settings.max or hi)
    rule = (truth.rule.multiple, truth.rule.min_hw) if truth.rule is not None else None
    probes = [truth.probe(s) for s in final.candidate.probes]
    return engine_for_export(final.written, settings, truth.data(probes), rule, run.log)

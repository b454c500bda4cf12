"""Stage `parity`: the eager truth once per shape, then every graph on every requested backend against it.

Shapes: the settings' `parity_shapes`, else the example shape plus, for dynamic axes, the
sweep inside the model's shape rule (batch > 1, odd multiples, non-square where allowed).
Tolerance, in order: the settings' `atol` / `rtol`; a registry module's measured one; else
scaled by the model's own fp32 noise, per output channel (`parity.noise.channel_atol`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from attndeploy.defaults import ONNX_TOL, ORT_PROVIDERS, Tolerance
from attndeploy.errors import CheckFailed, UsageError, first_line
from attndeploy.localise import localise_divergence
from attndeploy.parity.check import EagerFailed, Probe, compare_probes
from attndeploy.parity.noise import (
    ABSOLUTE_FLOOR,
    NOISE_MULTIPLE,
    RELATIVE_FLOOR,
    channel_atol,
)
from attndeploy.parity.shape_rules import shape_list
from attndeploy.pipeline.stages.simplify import fp32_graph
from attndeploy.pipeline.state import Graph, PipelineState
from attndeploy.runtimes.onnxruntime_runner import (
    OnnxRuntimeRunner,
    check_backend_installed,
)
from attndeploy.shapes import Shape, format_shape
from attndeploy.usercode import calling_user_code


def parity_shapes(state: PipelineState) -> list[Shape]:
    settings = state.settings
    if settings.parity_shapes:
        return list(settings.parity_shapes)
    shapes = [state.shape]
    if state.dynamic_axes and state.rule is not None:
        shapes += [s for s in state.rule.sweep(state.shape)
                   if all(a in state.dynamic_axes or s[a] == state.shape[a] for a in range(len(s)))]
    return shapes


ChannelAtol = Callable[[Probe], dict[str, np.ndarray]]


def tolerance(state: PipelineState) -> tuple[Tolerance | None, ChannelAtol | None, str]:
    """(scalar tolerance or None, per-channel atol by output name at a probe, how it was chosen)."""
    settings = state.settings
    if settings.atol is not None or settings.rtol is not None:
        tol = Tolerance(ONNX_TOL.atol if settings.atol is None else settings.atol,
                        ONNX_TOL.rtol if settings.rtol is None else settings.rtol)
        return tol, None, "given"
    spec = state.spec
    meter = state.noise
    assert state.eager is not None
    if meter is None or not meter.measure(state.eager.probe(state.shape)).channels:
        if spec is not None:
            return spec.onnx_tol, None, f"measured for {spec.name} (registry)"
        return ONNX_TOL, None, "default (the model's fp32 noise could not be measured)"

    def per_probe(probe: Probe) -> dict[str, np.ndarray]:
        return dict(zip(state.output_names, channel_atol(meter.measure(probe)).values()))

    how = (f"{NOISE_MULTIPLE:g} x the fp32 noise per channel at each input, at least {RELATIVE_FLOOR:g} x the "
           f"channel's largest value and {ABSOLUTE_FLOOR:g}")
    if spec is None:
        return None, per_probe, how
    return spec.onnx_tol, per_probe, how + f", and the registry's measured {spec.name} tolerance"


def _probes(state: PipelineState, shapes: list[Shape]) -> None:
    """The eager truth at `shapes`; a shape the model refuses is bad input when given, else dropped with a note."""
    assert state.eager is not None
    state.probes = []
    with calling_user_code(f"{state.name}'s forward"):
        for shape in shapes:
            try:
                state.probes.append(state.eager.probe(shape))
            except EagerFailed as err:
                rule = state.rule.describe() if state.rule else "unknown"
                if state.settings.parity_shapes or shape == state.shape:
                    raise UsageError(f"{state.name}: a parity shape is outside what the model accepts ({rule})",
                                     "shapes the model accepts in eager", str(err)) from err
                state.notes.append(f"parity shape dropped: {err} (the model's rule is narrower than its probes "
                                   f"showed: {rule})")


def run_graph(state: PipelineState, graph: Graph, backend: str) -> None:
    """Parity of one graph on one onnxruntime backend, stored as `<precision>/<backend>`."""
    tol, per_channel, how = tolerance(state)
    with OnnxRuntimeRunner(graph.runnable, ORT_PROVIDERS[backend]) as runner:
        report = compare_probes(state.probes, lambda x: list(runner.infer({state.input_name: x}).values()),
                                runner.output_names, tol, backend, per_channel)
    report.notes.append(f"tolerance: {how}")
    if state.noise is not None:
        report.noise = state.noise.summary()
    state.parity[f"{graph.precision}/{backend}"] = report


def fall_back_to_export(state: PipelineState) -> None:
    """Where the simplified graph fails and the unsimplified export passes, keep the export and name onnxsim."""
    if state.exported is None or state.exported is state.proto or all(r.passed for r in state.parity.values()):
        return
    failed = "; ".join(r.failure_message() for r in state.parity.values() if not r.passed)
    simplified, simplified_reports = state.graphs, state.parity
    state.graphs, state.parity = [fp32_graph(state, state.exported)], {}
    for backend in state.settings.backends:
        run_graph(state, state.graphs[0], backend)
    if not all(r.passed for r in state.parity.values()):
        state.graphs, state.parity = simplified, simplified_reports  # the export is wrong too: not onnxsim's doing
        return
    state.proto = state.graphs[0].proto
    if state.simplify is not None:
        state.simplify = replace(state.simplify, kept="original")
    state.notes.append(f"onnxsim's simplification changed the numbers ({failed[:300]}); the unsimplified export "
                       "passes and is kept")


def parity(state: PipelineState) -> None:
    for backend in state.settings.backends:
        check_backend_installed(backend)
    shapes = parity_shapes(state)
    state.log(f"parity vs eager in onnxruntime at {shape_list(shapes)}"
              + (f" ({state.inputs.describe()})" if state.inputs else ""))
    _probes(state, shapes)
    for graph in state.graphs:
        for backend in state.settings.backends:
            run_graph(state, graph, backend)
    fall_back_to_export(state)


def failed(state: PipelineState) -> bool:
    return any(not r.passed for r in state.parity.values())


def localise_failure(state: PipelineState) -> None:
    """Stage `localise`, where the fp32 graph (after any reroute) fails: the first diverging module, at the first
    failing shape, into the report."""
    failed = next((r for r in state.parity.values() if not r.passed), None)
    if failed is None or state.exported is None or state.deploy is None:
        return
    tag = next((s.split(" ")[0] for o in failed.outputs for s in o.failing_shapes), "")
    probe = next((p for p in state.probes if format_shape(p.shape) == tag), None)
    if probe is None:
        return
    try:
        with calling_user_code(f"{state.name}'s forward"):
            found = localise_divergence(state.deploy, state.exported, probe.x.copy(), state.input_name,
                                        failed.tolerance or ONNX_TOL)
    except (UsageError, CheckFailed) as err:
        state.notes.append(f"localisation failed: {first_line(err)}")
        return
    if found is not None:
        state.localisation = found
        for report in state.parity.values():
            if not report.passed:
                report.blame = found.message()


"""Stage `precision`: the fp16 or INT8 graph of the verified fp32 graph, checked against the eager truth.

Wanted (`wanted`) when `settings.precision` is "fp16" or "int8" and the fp32 graph passed
parity on every backend. From `state.graphs[0]`:

- fp16: the keep-fp32 policy (`settings.keep_fp32`, module paths) plus the automatic
  search (`precision.search`: the fp32 plan, overflow, then the error budget, in plain
  and strict-fp16 evaluation) on the parity inputs;
- int8: Q/DQ in `settings.int8_flavour`, calibrated on `settings.calibration` (resized to
  the example's H, W) with `settings.calibration_method`, the policy's modules left float,
  per-module sensitivity and automatic exclusion until `settings.int8_target` is met and
  the family's task check (a detector's detections) passes on the int8 graph.

The graph is verified (`onnx.checker`, topological order, float32 inputs and outputs) and
appended as `Graph("fp16"|"int8", ..., <name>.fp16.onnx|<name>.int8.onnx beside the fp32
file)`; its parity on each backend goes to `state.parity["<precision>/<backend>"]` as a
`ReducedParity` (cosine budget, all finite, strict-fp16 too for fp16; per output cosine,
SQNR, max abs, p99 relative error; per module and the worst module; what was kept or
excluded). The task stage then runs the family's task check on it like on every graph.
"""

from __future__ import annotations

import numpy as np
import onnx
import torch
import torch.nn.functional as F

from attndeploy.defaults import FP16_MIN_COSINE, INT8_MIN_COSINE, ORT_PROVIDERS
from attndeploy.errors import first_line
from attndeploy.lowering.deformconv import PLUGIN_DOMAIN
from attndeploy.parity.inputs import load_inputs
from attndeploy.pipeline.stages.simplify import runnable
from attndeploy.pipeline.state import Graph, PipelineState
from attndeploy.precision.fp16 import convert_onnx_to_fp16, name_nodes
from attndeploy.precision.int8 import Quantizer
from attndeploy.precision.modules import module_errors, worst_module
from attndeploy.precision.policy import group_by_module, keep_nodes
from attndeploy.precision.report import ReducedParity, reduced_parity
from attndeploy.precision.search import search_fp16
from attndeploy.precision.sensitivity import Accept, quantize_to_target
from attndeploy.precision.strict import strict_fp16_model
from attndeploy.precision.verify import verify_reduced
from attndeploy.runtimes.onnxruntime_runner import OnnxRuntimeRunner
from attndeploy.usercode import calling_user_code

SEARCH_PROBES = 2      # the search and the sensitivity analysis run on the first parity inputs (the example first)
BUDGETS = {"fp16": FP16_MIN_COSINE, "int8": INT8_MIN_COSINE}


def wanted(state: PipelineState) -> bool:
    fp32 = [r for k, r in state.parity.items() if k.startswith("fp32/")]
    return state.settings.precision != "fp32" and bool(state.graphs) and bool(fp32) and all(r.passed for r in fp32)


def calibration_data(state: PipelineState) -> np.ndarray:
    """The calibration samples (K, C, H, W) float32 at the example's H, W (`UsageError` for a wrong shape)."""
    data = load_inputs(state.settings.calibration, state.shape, "calibration")
    if data.ndim == 4 and tuple(data.shape[2:]) != tuple(state.shape[2:]):
        data = F.interpolate(torch.from_numpy(data), size=tuple(state.shape[2:]), mode="bilinear",
                             align_corners=False).numpy()
    return np.ascontiguousarray(data, np.float32)


def _source(state: PipelineState) -> onnx.ModelProto:
    """The fp32 graph to reduce, nodes named (int8 calibrates by running it: plugin nodes swapped for ONNX ops)."""
    fp32 = state.graphs[0]
    if state.settings.precision == "int8":
        model = onnx.load_from_string(fp32.runnable)
    else:
        model = onnx.ModelProto()
        model.CopyFrom(fp32.proto)
    name_nodes(model)
    return model


def _fp16(state: PipelineState, model: onnx.ModelProto, policy: dict[str, str]) -> tuple[onnx.ModelProto, dict]:
    probes = state.probes[:SEARCH_PROBES]
    has_plugins = any(n.domain == PLUGIN_DOMAIN for n in model.graph.node)
    searched = onnx.load_from_string(runnable(model)) if has_plugins else model   # what onnxruntime can run
    found = search_fp16(searched, [p.x for p in probes], [list(p.refs.values()) for p in probes], state.input_name,
                        policy)
    for module, items in found.kept_by_module().items():
        state.log(f"fp16: `{module}` kept fp32: {items[0]}" + (f" (+{len(items) - 1} more)" if len(items) > 1 else ""))
    reduced = found.model
    if has_plugins:  # the same nodes kept on the plugin graph; the plugin node has no fp16 schema and stays fp32
        reduced = convert_onnx_to_fp16(model, keep_nodes=[k.node for k in found.kept], static_plan=False)
    return reduced, {"fp16_search": found.to_dict()}


def _task_accepts(state: PipelineState) -> Accept | None:
    """The family's task check (a detector's detections) as the int8 search's second test; None without one."""
    adapter, truth = state.adapter, state.truth
    if adapter is None or adapter.task_check is None or truth is None:
        return None
    check = adapter.task_check

    def accept(graph: onnx.ModelProto) -> tuple[bool, str]:
        with calling_user_code(f"{state.name}'s forward"):
            result = check(truth, graph.SerializeToString(), state.input_name, "int8")
        return result.passed, result.message

    return accept


def _int8(state: PipelineState, model: onnx.ModelProto, policy: dict[str, str]) -> tuple[onnx.ModelProto, dict]:
    settings = state.settings
    probes = state.probes[:SEARCH_PROBES]
    calibration = calibration_data(state)
    state.log(f"int8 ({settings.int8_flavour} flavour): calibrating on {len(calibration)} samples "
              f"({settings.calibration_method})")
    accept = _task_accepts(state)
    with Quantizer(model, calibration, state.input_name, settings.int8_flavour, settings.calibration_method,
                   keep_float=policy) as quantizer:
        found = quantize_to_target(quantizer, [p.x for p in probes], [list(p.refs.values()) for p in probes],
                                   settings.int8_target, accept=accept)
    ranked = ", ".join(f"`{s.module}` {s.cosine:.5f}" for s in found.sensitivity[:5])
    state.log(f"int8 sensitivity (cosine with only that module quantized, most sensitive first): {ranked}")
    if found.excluded:
        goal = f"cosine {settings.int8_target:g}" + (" and the task check" if accept is not None else "")
        state.log(f"int8: left float for {goal}: " + ", ".join(f"`{m}`" for m in found.excluded)
                  + ("" if found.passed else f" (still missed after {len(found.excluded)} module(s))"))
    return found.model, {"int8_search": {**found.to_dict(), "flavour": settings.int8_flavour,
                                         "calibration_method": settings.calibration_method,
                                         "calibration_samples": len(calibration)}}


def _modules(state: PipelineState, report: ReducedParity, target: onnx.ModelProto) -> None:
    """Per-module errors of `target` and the worst module on the first probe (a failure here is a note, not a stop)."""
    assert state.truth is not None
    try:
        report.modules = module_errors(state.truth, target, state.probes[0].x, state.input_name)
    except Exception as err:  # localisation is evidence on top of the verdict: never the reason a run stops
        report.notes.append(f"per-module errors unavailable: {first_line(err, 200)}")
        return
    report.worst_module = worst_module(report.modules, report.cosine_budget)


def _check(state: PipelineState, precision: str, model: bytes, providers: tuple[str, ...], label: str,
           level: str = "all") -> ReducedParity:
    with OnnxRuntimeRunner(model, providers, level=level) as runner:
        return reduced_parity(state.probes, lambda x: list(runner.infer({state.input_name: x}).values()),
                              runner.output_names, label, precision, BUDGETS[precision])


def precision(state: PipelineState) -> None:
    settings, fp32 = state.settings, state.graphs[0]
    model = _source(state)
    policy = keep_nodes(model, settings.keep_fp32) if settings.keep_fp32 else {}
    for module, nodes in group_by_module(model, policy).items():
        state.log(f"{settings.precision}: `{module}` kept fp32 by policy ({len(nodes)} node(s))")
    reduced, details = (_fp16 if settings.precision == "fp16" else _int8)(state, model, policy)
    verify_reduced(reduced, f"the {settings.precision} graph")
    path = fp32.path.with_name(f"{fp32.path.stem}.{settings.precision}.onnx")
    graph = Graph(settings.precision, reduced, path, runnable(reduced))
    state.graphs.append(graph)
    # what the per-module errors run; for fp16 its strict-fp16 form, checked once on the CPU for every backend
    target = onnx.load_from_string(graph.runnable)
    strict = None
    if graph.precision == "fp16":
        target = strict_fp16_model(target)
        strict = _check(state, graph.precision, target.SerializeToString(), ORT_PROVIDERS["onnxruntime-cpu"],
                        "onnxruntime-cpu-strict-fp16", "none")
    budget = f"every output finite and cosine >= {BUDGETS[graph.precision]:g} against eager fp32" + (
        " in plain and strict-fp16 evaluation" if strict is not None else "")
    for backend in settings.backends:
        report = _check(state, graph.precision, graph.runnable, ORT_PROVIDERS[backend], backend)
        report.strict = strict
        report.notes.append(f"budget: {budget}")
        report.details = dict(details)
        if backend == settings.backends[0]:
            _modules(state, report, target)
        state.parity[f"{graph.precision}/{backend}"] = report
        verdict = "passed" if report.passed else f"FAILED: {report.failure_message()[:300]}"
        state.log(f"{graph.precision} parity ({backend}): lowest cosine {report.min_cosine:.6f}, {verdict}")


__all__ = ["calibration_data", "precision", "wanted"]

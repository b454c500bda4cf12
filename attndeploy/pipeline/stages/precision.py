"""Stage `precision`: the fp16 or INT8 candidate of the verified fp32 graph, judged against the same truth.

Wanted when `settings.precision` is "fp16" or "int8" and the fp32 candidate passed. From it:

- fp16: the keep-fp32 policy (`settings.keep_fp32`, module paths) plus the automatic
  search (`precision.search`: the fp32 plan, overflow, then the error budget, in plain
  and strict-fp16 evaluation) on the first probes;
- int8: Q/DQ in `settings.int8_flavour`, calibrated on `settings.calibration` (or, for a
  family that ships images, on those, said so) with `settings.calibration_method`, the
  policy's modules left float; the fully quantized graph is tried first, and only where it
  misses `settings.int8_target` or the family's task check are modules ranked by
  sensitivity and left float one by one.

The graph is verified (`onnx.checker`, topological order, float32 inputs and outputs) and
judged like every candidate (`attndeploy.verdict`: the cosine budget, every value finite,
the strict-fp16 evaluation for fp16, and the share of weighted ops at the precision:
none is never a pass), with per-module errors and what was kept or excluded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnx
import torch
import torch.nn.functional as F

from attndeploy.defaults import ORT_PROVIDERS
from attndeploy.errors import first_line
from attndeploy.lowering.deformconv import PLUGIN_DOMAIN
from attndeploy.pipeline.candidate import Candidate, Judged
from attndeploy.pipeline.judging import judge_candidate, task_check
from attndeploy.pipeline.model import PreparedModel
from attndeploy.pipeline.run import Run
from attndeploy.pipeline.stages.export import runnable
from attndeploy.precision.census import census
from attndeploy.precision.fp16 import convert_onnx_to_fp16, name_nodes
from attndeploy.precision.int8 import Quantizer
from attndeploy.precision.modules import module_errors, worst_module
from attndeploy.precision.policy import group_by_module, keep_nodes
from attndeploy.precision.search import search_fp16
from attndeploy.precision.sensitivity import Accept, quantize_to_target
from attndeploy.precision.strict import strict_fp16_model
from attndeploy.precision.verify import verify_reduced
from attndeploy.runtimes.onnxruntime_runner import OnnxRuntimeRunner
from attndeploy.settings import ExportSettings
from attndeploy.truth.truth import Truth
from attndeploy.verdict import Verdict, judge
from attndeploy.verdict.budget import reduced_budget

SEARCH_PROBES = 2      # the search and the sensitivity analysis run on the first probes (the example first)


@dataclass(frozen=True)
class Variant:
    """A reduced-precision graph to make: `label` names its file (`<stem>.<label>.onnx`) and keys its verdicts."""

    label: str
    precision: str           # "fp16" | "int8"
    flavour: str = "trt"     # int8 only: "trt" | "ort-cpu"


# the graphs a bench or self-test may ask one run for, beside the settings' own
VARIANTS = {"fp16": Variant("fp16", "fp16"), "int8": Variant("int8", "int8", "trt"),
            "int8-ort-cpu": Variant("int8-ort-cpu", "int8", "ort-cpu")}


def settings_variant(settings: ExportSettings) -> Variant:
    """The reduced graph the settings ask for (`precision`, `int8_flavour`)."""
    return Variant(settings.precision, settings.precision, settings.int8_flavour)


def calibration_data(run: Run, model: PreparedModel, truth: Truth) -> tuple[np.ndarray, str]:
    """The calibration samples (K, C, H, W) float32 at the example's H, W, and where they came from."""
    given = run.settings.calibration
    if given is None and truth.task is not None:
        data, source = truth.task.inputs, (f"the {len(truth.task.inputs)} image(s) the {model.family.family} family "
                                           "ships (real images from your data calibrate better: --calib DIR)")
    else:
        data, source = model.inputs.calibration_samples()  # read and checked by the prepare stage
    if data.ndim == 4 and tuple(data.shape[2:]) != tuple(model.shape[2:]):
        data = F.interpolate(torch.from_numpy(np.ascontiguousarray(data)), size=tuple(model.shape[2:]),
                             mode="bilinear", align_corners=False).numpy()
    return np.ascontiguousarray(data, np.float32), source


def _source(fp32: Candidate, precision: str) -> onnx.ModelProto:
    """The fp32 graph to reduce, nodes named (int8 calibrates by running it: plugin nodes swapped for ONNX ops)."""
    if precision == "int8":
        model = onnx.load_from_string(fp32.runnable)
    else:
        model = onnx.ModelProto()
        model.CopyFrom(fp32.proto)
    name_nodes(model)
    return model


def _fp16(run: Run, truth: Truth, fp32: Candidate, model: onnx.ModelProto, policy: dict[str, str]
          ) -> tuple[onnx.ModelProto, dict]:
    probes = [truth.probe(s) for s in fp32.probes[:SEARCH_PROBES]]
    has_plugins = any(n.domain == PLUGIN_DOMAIN for n in model.graph.node)
    searched = onnx.load_from_string(runnable(model)) if has_plugins else model   # what onnxruntime can run
    found = search_fp16(searched, [p.x for p in probes], [list(p.eager.values()) for p in probes],
                        truth.input_name, policy)
    for module, items in found.kept_by_module().items():
        run.log(f"fp16: `{module}` kept fp32: {items[0]}" + (f" (+{len(items) - 1} more)" if len(items) > 1 else ""))
    reduced = found.model
    if has_plugins:  # the same nodes kept on the plugin graph; the plugin node has no fp16 schema and stays fp32
        reduced = convert_onnx_to_fp16(model, keep_nodes=[k.node for k in found.kept], static_plan=False)
    return reduced, {"fp16_search": found.to_dict()}


def _task_accepts(model: PreparedModel, truth: Truth) -> Accept | None:
    """The family's task check (a detector's detections) as the int8 search's second test; None without one."""
    if model.family.task_check is None or truth.task is None:
        return None

    def accept(graph: onnx.ModelProto) -> tuple[bool, str]:
        with OnnxRuntimeRunner(graph.SerializeToString()) as runner:
            result = task_check(model, truth, lambda x: list(runner.infer({model.input_name: x}).values()), "int8")
        assert result is not None
        return result.passed, result.message

    return accept


def _int8(run: Run, model: PreparedModel, truth: Truth, fp32: Candidate, graph: onnx.ModelProto,
          policy: dict[str, str], flavour: str) -> tuple[onnx.ModelProto, dict]:
    settings = run.settings
    probes = [truth.probe(s) for s in fp32.probes[:SEARCH_PROBES]]
    calibration, source = calibration_data(run, model, truth)
    run.log(f"int8 ({flavour} flavour): calibrating on {len(calibration)} sample(s) from {source} "
            f"({settings.calibration_method})")
    accept = _task_accepts(model, truth)
    with Quantizer(graph, calibration, truth.input_name, flavour, settings.calibration_method,
                   keep_float=policy) as quantizer:
        found = quantize_to_target(quantizer, [p.x for p in probes], [list(p.eager.values()) for p in probes],
                                   settings.int8_target, accept=accept)
    if found.sensitivity:
        ranked = ", ".join(f"`{s.module}` {s.cosine:.5f}" for s in found.sensitivity[:5])
        run.log(f"int8 sensitivity (cosine with only that module quantized, most sensitive first): {ranked}")
    if found.excluded:
        goal = f"cosine {settings.int8_target:g}" + (" and the task check" if accept is not None else "")
        run.log(f"int8: left float for {goal}: " + ", ".join(f"`{m}`" for m in found.excluded)
                + ("" if found.passed else f" (still missed after {len(found.excluded)} module(s))"))
    return found.model, {"int8_search": {**found.to_dict(), "flavour": flavour,
                                         "calibration_method": settings.calibration_method,
                                         "calibration_samples": len(calibration), "calibration_source": source}}


def _modules(truth: Truth, probe_shape: tuple[int, ...], verdict: Verdict, target: onnx.ModelProto) -> None:
    """Per-module errors of `target` and the worst module at `probe_shape` (the smallest probe: every module's tensors
    are kept; a failure here is a note, not a stop)."""
    probe = truth.probe(probe_shape)
    try:
        verdict.modules = module_errors(truth.module_runs(probe, double=False)[0], target, probe.x, truth.input_name)
    except Exception as err:  # localisation is evidence on top of the verdict: never the reason a run stops
        verdict.notes.append(f"per-module errors unavailable: {first_line(err, 200)}")
        return
    verdict.worst_module = worst_module(verdict.modules, verdict.budget.min_cosine)


def _strict(truth: Truth, candidate: Candidate, target: onnx.ModelProto) -> Verdict:
    """The fp16 graph with every float16 tensor rounded, on the CPU (the overflow fp32 fallback kernels hide)."""
    budget = reduced_budget("fp16")
    with OnnxRuntimeRunner(target.SerializeToString(), ORT_PROVIDERS["onnxruntime-cpu"], level="none") as runner:
        return judge([truth.probe(s) for s in candidate.probes],
                     lambda x: list(runner.infer({truth.input_name: x}).values()), runner.output_names, budget,
                     ("fp16", "onnxruntime-cpu-strict-fp16"), truth.reference)


def precision(run: Run, model: PreparedModel, truth: Truth, fp32: Judged, variant: Variant) -> Judged:
    settings = run.settings
    target_precision = variant.precision
    source = _source(fp32.candidate, target_precision)
    policy = keep_nodes(source, settings.keep_fp32) if settings.keep_fp32 else {}
    for module, nodes in group_by_module(source, policy).items():
        run.log(f"{target_precision}: `{module}` kept fp32 by policy ({len(nodes)} node(s))")
    if target_precision == "fp16":
        reduced, details = _fp16(run, truth, fp32.candidate, source, policy)
    else:
        reduced, details = _int8(run, model, truth, fp32.candidate, source, policy, variant.flavour)
    verify_reduced(reduced, f"the {target_precision} graph")
    path = fp32.candidate.path.with_name(f"{fp32.candidate.path.stem}.{variant.label}.onnx")
    candidate = Candidate(f"{fp32.candidate.route} -> {variant.label}", fp32.candidate.exporter, target_precision,
                          reduced, runnable(reduced), path, None, fp32.candidate.input_axes, fp32.candidate.probes,
                          label=variant.label)
    judged = judge_candidate(run, model, truth, candidate, reduced_budget(target_precision, settings.int8_target))
    at, total = census(reduced, target_precision)
    target = onnx.load_from_string(candidate.runnable)
    strict = None
    if target_precision == "fp16":
        target = strict_fp16_model(target)
        strict = _strict(truth, candidate, target)
    for i, verdict in enumerate(judged.verdicts.values()):
        verdict.reduced_fraction = at / total if total else None
        verdict.notes.append(f"{at} of {total} weighted ops at {target_precision}")
        verdict.strict = strict
        verdict.details = dict(details)
        if i == 0:
            _modules(truth, min(candidate.probes, key=math.prod), verdict, target)
        state = "passed" if verdict.passed else f"FAILED: {verdict.failure_message()[:300]}"
        run.log(f"{variant.label} ({verdict.backend}): lowest cosine {verdict.min_cosine:.6f}, {at} of {total} "
                f"weighted ops at {target_precision}, {state}")
    return judged


__all__ = ["VARIANTS", "Variant", "calibration_data", "precision", "settings_variant"]

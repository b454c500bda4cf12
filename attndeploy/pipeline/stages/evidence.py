"""Stage `evidence`: the `Truth` of this export, built once — what the model accepts, and what it computes.

- the shape rule (`parity.shape_rules`): probed in eager near the example (a registry
  module's declared rule is taken as it is, a detector's stride with one probe that shows
  it); the dynamic axes follow it, and a fixed H, W or batch is said;
- the probes: the example and the sweep inside the rule (or the settings' `parity_shapes`),
  each with eager fp32 and float64 outputs;
- the determinism gate (`truth.determinism`) on the cheapest probe: a model whose eager
  output moves stops the run (exit 1) before any verdict;
- the family's task inputs (a detector's images) with eager's outputs on them.
"""

from __future__ import annotations

import numpy as np

from attndeploy.adapters.base import in_batches
from attndeploy.errors import CheckFailed, UsageError
from attndeploy.parity.shape_rules import ShapeRule, discover_rule, shape_list, witness
from attndeploy.pipeline.model import PreparedModel
from attndeploy.pipeline.run import Run
from attndeploy.shapes import Shape, format_shape
from attndeploy.truth.determinism import check_determinism
from attndeploy.truth.eager import EagerFailed, EagerModel
from attndeploy.truth.truth import TaskTruth, Truth
from attndeploy.usercode import calling_user_code


def _declared(model: PreparedModel) -> ShapeRule | None:
    """The registry's rule, or the family's (a detector's stride, with the one probe that shows it)."""
    if model.spec is not None:
        return model.spec.rule
    stride = model.family.hw_multiple
    if stride <= 1:
        return None
    shown = witness(model.eager.fp32_at, model.shape)
    return ShapeRule(stride, evidence=(f"the model's stride is {stride}", *((shown,) if shown else ())))


def _parity_shapes(run: Run, truth: Truth, example: Shape) -> list[Shape]:
    if run.settings.parity_shapes:
        return list(run.settings.parity_shapes)
    shapes = [example]
    if truth.dynamic_axes and truth.rule is not None:
        shapes += [s for s in truth.rule.sweep(example)
                   if all(a in truth.dynamic_axes or s[a] == example[a] for a in range(len(s)))]
    return shapes


def _probes(run: Run, truth: Truth, shapes: list[Shape], example: Shape) -> None:
    """The truth at `shapes`; a shape the model refuses is bad input when given, else dropped with a note."""
    rule = truth.rule.describe() if truth.rule else "unknown"
    for shape in shapes:
        try:
            truth.probes.append(truth.probe(shape))
        except EagerFailed as err:
            if run.settings.parity_shapes or shape == example:
                raise UsageError(f"{run.name}: a parity shape is outside what the model accepts ({rule})",
                                 "shapes the model accepts in eager", str(err)) from err
            run.note(f"parity shape dropped: {err} (the model's rule is narrower than its probes showed: {rule})")


def _task(model: PreparedModel, truth: Truth) -> None:
    inputs, batch = model.family.task_inputs, model.family.task_batch
    if inputs is not None:
        x = np.ascontiguousarray(inputs, np.float32)

        def float64(images: np.ndarray) -> list[np.ndarray] | None:
            with calling_user_code(f"{model.name}'s forward"):
                return in_batches(lambda c: list((model.eager.float64(c) or {}).values()), images, batch) or None

        truth.task = TaskTruth(x, in_batches(lambda c: list(model.eager.fp32(c).values()), x, batch), float64)


def evidence(run: Run, model: PreparedModel) -> Truth:
    truth = Truth(model.eager, model.input_name, model.output_names)
    truth.module_model = EagerModel(model.deploy, model.inputs.make, run.settings.seed)
    example = model.shape
    with calling_user_code(f"{run.name}'s forward"):
        rule = truth.rule = discover_rule(model.eager.fp32_at, example, _declared(model))
        run.log(f"shape rule: {rule.describe()}")
        if run.settings.dynamic:
            truth.dynamic_axes = rule.dynamic_axes(len(example))
            fixed = [name for axis, name in ((0, "batch"), (2, "H"), (3, "W"))
                     if axis < len(example) and axis not in truth.dynamic_axes]
            if fixed:
                run.note(f"{', '.join(fixed)} fixed at {format_shape(example)} by the model ({rule.describe()}): "
                         f"only {', '.join(str(a) for a in truth.dynamic_axes) or 'no'} axes dynamic")
        shapes = _parity_shapes(run, truth, example)
        run.log(f"truth at {shape_list(shapes)} ({model.inputs.describe()}; reference: float64)")
        _probes(run, truth, shapes, example)
        if truth.eager.failed64:
            run.note(f"{truth.eager.failed64}: the reference is {truth.reference}")
        moving = check_determinism(model.eager, min(truth.probes, key=lambda p: p.x.size), truth.reference)
        _task(model, truth)
    if moving:
        raise CheckFailed(f"{run.name}: {moving}")
    return truth

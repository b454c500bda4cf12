"""Stage `evidence`: before exporting, learn what the model accepts and how noisy its fp32 is.

- the shape rule (`parity.shape_rules`): probed in eager near the example (a registry
  module's declared rule is taken as it is); the dynamic axes follow it, and a fixed H, W
  or batch is said;
- the meter of the fp32 noise (`parity.noise`), which scales the tolerance at every parity
  input (a registry module's measured tolerance applies too: an element fails past
  either), and the determinism gate (`parity.determinism`, on the cheapest probe): a model
  whose eager output moves between runs stops the run (exit 1) before any parity verdict.
"""

from __future__ import annotations

from attndeploy.errors import CheckFailed
from attndeploy.parity.determinism import check_repeat, check_threads
from attndeploy.parity.noise import NoiseMeter
from attndeploy.parity.shape_rules import ShapeRule, discover_rule, witness
from attndeploy.pipeline.state import PipelineState
from attndeploy.shapes import format_shape
from attndeploy.usercode import calling_user_code


def _declared(state: PipelineState) -> ShapeRule | None:
    """The registry's rule, or the family's (a detector's stride, with the one probe that shows it)."""
    assert state.eager is not None
    if state.spec is not None:
        return state.spec.rule
    stride = state.adapter.hw_multiple if state.adapter is not None else 1
    if stride <= 1:
        return None
    shown = witness(state.eager.run, state.shape)
    return ShapeRule(stride, evidence=(f"the model's stride is {stride}", *((shown,) if shown else ())))


def evidence(state: PipelineState) -> None:
    assert state.eager is not None and state.truth is not None
    shape = state.shape
    with calling_user_code(f"{state.name}'s forward"):
        rule = state.rule = discover_rule(state.eager.run, shape, _declared(state))
        state.log(f"shape rule: {rule.describe()}")
        if state.settings.dynamic:
            state.dynamic_axes = rule.dynamic_axes(len(shape))
            fixed = [name for axis, name in ((0, "batch"), (2, "H"), (3, "W"))
                     if axis < len(shape) and axis not in state.dynamic_axes]
            if fixed:
                state.notes.append(f"{', '.join(fixed)} fixed at {format_shape(shape)} by the model "
                                   f"({rule.describe()}): only {', '.join(str(a) for a in state.dynamic_axes) or 'no'} "
                                   "axes dynamic")
        state.noise = NoiseMeter(state.truth)
        cheap = state.eager.smallest()  # determinism on the cheapest probe run so far
        moving = check_repeat(state.truth, cheap)
        if not moving:
            moving = check_threads(state.truth, cheap, state.noise.measure(cheap))
    if moving:
        raise CheckFailed(f"{state.name}: {moving}")

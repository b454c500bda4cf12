"""Stage `task`: the model family's task-level check (a detector's detections ...) on every graph."""

from __future__ import annotations

from attndeploy.pipeline.state import PipelineState
from attndeploy.usercode import calling_user_code


def task(state: PipelineState) -> None:
    assert state.adapter is not None and state.adapter.task_check is not None and state.truth is not None
    for graph in state.graphs:
        with calling_user_code(f"{state.name}'s forward"):
            result = state.adapter.task_check(state.truth, graph.runnable, state.input_name, graph.precision)
        state.tasks[graph.precision] = result
        state.log(f"{result.name} ({graph.precision}): {result.message}")

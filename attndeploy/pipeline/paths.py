"""Where each graph of a run is written: its path when it passed parity on every backend, else `.rejected.onnx`."""

from __future__ import annotations

from pathlib import Path

from attndeploy.pipeline.state import Graph, PipelineState


def rejected_path(path: Path) -> Path:
    return path.with_name(path.stem + ".rejected.onnx")


def graph_passed(state: PipelineState, graph: Graph) -> bool:
    """Parity passed on every backend, and the task-level check (where the family has one)."""
    reports = [r for key, r in state.parity.items() if key.startswith(graph.precision + "/")]
    task = state.tasks.get(graph.precision)
    return bool(reports) and all(r.passed for r in reports) and (task is None or task.passed)


def written_path(state: PipelineState, graph: Graph) -> Path:
    return graph.path if graph_passed(state, graph) else rejected_path(graph.path)

"""Judging a candidate: run it on every requested onnxruntime backend over the truth's probes, and the family's
task check on the truth's task inputs, in one session per backend. The verdict itself is `attndeploy.verdict.judge`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from attndeploy.adapters.base import FAILED, TaskCheck, in_batches
from attndeploy.defaults import ORT_PROVIDERS
from attndeploy.pipeline.candidate import Candidate, Judged
from attndeploy.pipeline.model import PreparedModel
from attndeploy.pipeline.run import Run
from attndeploy.runtimes.onnxruntime_runner import OnnxRuntimeRunner, check_backend_installed
from attndeploy.settings import ExportSettings
from attndeploy.truth.truth import Truth
from attndeploy.usercode import calling_user_code
from attndeploy.verdict import Budget, judge
from attndeploy.verdict.judge import RowCheck

GraphRun = Callable[[np.ndarray], list[np.ndarray]]


def fp32_budget(settings: ExportSettings) -> Budget:
    """The fp32 rule on float64, or the user's `atol` / `rtol` (the other defaulting to 0)."""
    if settings.atol is not None or settings.rtol is not None:
        return Budget.given(settings.atol or 0.0, settings.rtol or 0.0)
    return Budget.float64()


def task_check(model: PreparedModel, truth: Truth, run_graph: GraphRun, precision: str) -> TaskCheck | None:
    """The family's task check (a detector's detections) of a graph against eager on the truth's task inputs; where it
    fails, again with eager's float64 run there, which may find the failure undecidable (eager itself ill-conditioned
    on these inputs, or differences within the fp32 rule's limit)."""
    compare = model.family.task_check
    if compare is None or truth.task is None:
        return None
    got = in_batches(run_graph, truth.task.inputs.copy(), model.family.task_batch)
    with calling_user_code(f"{model.name}'s task check"):
        result = compare(truth.task.eager, got, precision, None)
    if result.status != FAILED:
        return result
    eager64 = truth.task.eager64  # eager's float64 run on the task inputs: made here, the first time a check fails
    if eager64 is None:
        return result
    with calling_user_code(f"{model.name}'s task check"):
        return compare(truth.task.eager, got, precision, eager64)


def row_checks(model: PreparedModel, precision: str) -> dict[str, RowCheck]:
    """The family's row check for each output holding detection rows (`Prepared.row_outputs`), at `precision`."""
    compare = model.family.task_check
    if compare is None:
        return {}

    def check(eager: np.ndarray, got: np.ndarray, reference: np.ndarray) -> tuple[str, str]:
        with calling_user_code(f"{model.name}'s task check"):
            result = compare([eager], [got], precision, [reference])
        return result.status, result.message

    return {name: check for name in model.family.row_outputs}


def judge_candidate(run: Run, model: PreparedModel, truth: Truth, candidate: Candidate, budget: Budget,
                    with_task: bool = True) -> Judged:
    """Every backend's verdict on `candidate` (at its probes), and the task check on the first backend."""
    judged = Judged(candidate)
    probes = [truth.probe(s) for s in candidate.probes]
    for i, backend in enumerate(run.settings.backends):
        check_backend_installed(backend)
        with OnnxRuntimeRunner(candidate.runnable, ORT_PROVIDERS[backend]) as runner:
            def run_graph(x: np.ndarray) -> list[np.ndarray]:
                return list(runner.infer({model.input_name: x}).values())

            with run.timed("parity"):
                verdict = judge(probes, run_graph, runner.output_names, budget, (candidate.key, backend),
                                truth.reference, row_checks(model, candidate.precision))
            judged.verdicts[(verdict.precision, verdict.backend)] = verdict
            if i == 0 and with_task:
                with run.timed("task"):
                    judged.task = task_check(model, truth, run_graph, candidate.precision)
    return judged


__all__ = ["fp32_budget", "judge_candidate", "row_checks", "task_check"]

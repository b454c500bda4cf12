"""Stage `localise`, where the fp32 candidate (after every route) fails: the first diverging module, at the first
failing probe, into the report and each failed verdict's `blame`."""

from __future__ import annotations

from attndeploy.defaults import ONNX_TOL
from attndeploy.errors import CheckFailed, UsageError, first_line
from attndeploy.localise import Localisation, localise_divergence
from attndeploy.pipeline.candidate import Judged
from attndeploy.pipeline.model import PreparedModel
from attndeploy.pipeline.run import Run
from attndeploy.truth.truth import Truth
from attndeploy.usercode import calling_user_code
from attndeploy.verdict import Budget


def localise(run: Run, model: PreparedModel, truth: Truth, judged: Judged) -> Localisation | None:
    failed = judged.first_failure()
    exported = judged.candidate.exported
    if failed is None or exported is None:
        return None
    tag = next((s.split(" ")[0] for o in failed.outputs for s in o.failing_shapes), "")
    probe = next((truth.probe(s) for s in judged.candidate.probes if truth.probe(s).label == tag), None)
    if probe is None:
        return None
    budget = failed.budget
    if budget.kind == "float64" and truth.eager.failed64:  # no float64 module outputs to anchor on
        budget = Budget.given(ONNX_TOL.atol, ONNX_TOL.rtol)
    try:
        with calling_user_code(f"{run.name}'s forward"):
            found = localise_divergence(model.deploy, truth.module_runs(probe), exported, probe.x.copy(),
                                        model.input_name, budget)
    except (UsageError, CheckFailed) as err:
        run.note(f"localisation failed: {first_line(err)}")
        return None
    if found is not None:
        for verdict in judged.verdicts.values():
            if not verdict.passed:
                verdict.blame = found.message()
    return found

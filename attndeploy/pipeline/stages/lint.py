"""Stage `lint`: the export hazards of the model about to be exported, by module path."""

from __future__ import annotations

import torch

from attndeploy.adapters import refine_findings
from attndeploy.copying import private_copy
from attndeploy.lint.torch_lint import TorchFinding, lint_model
from attndeploy.pipeline.model import PreparedModel
from attndeploy.pipeline.run import Run
from attndeploy.truth.truth import Truth
from attndeploy.usercode import calling_user_code


def lint(run: Run, model: PreparedModel, truth: Truth) -> list[TorchFinding]:
    """Runs a copy of the deploy model (a forward may keep state, as a detector head keeps the last input's anchors)
    and a trace of it once more, at the cheapest input the model is known to take."""
    with calling_user_code(f"{run.name}'s forward"):
        findings = lint_model(private_copy(model.deploy), torch.from_numpy(truth.smallest().x.copy()))
    findings = refine_findings(model.deploy, findings)
    for finding in findings:
        run.log(f"lint: {finding.message()}")
    return findings

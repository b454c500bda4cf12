"""Stage `lint`: the export hazards of the model about to be exported, by module path."""

from __future__ import annotations

import torch

from attndeploy.adapters import refine_findings
from attndeploy.copying import private_copy
from attndeploy.lint.torch_lint import lint_model
from attndeploy.pipeline.state import PipelineState
from attndeploy.usercode import calling_user_code


def lint(state: PipelineState) -> None:
    assert state.deploy is not None and state.example is not None
    assert state.eager is not None
    with calling_user_code(f"{state.name}'s forward"):
        # on a copy (a forward may keep state, as a detector head keeps the last input's anchors) at the
        # cheapest input the model is known to take: the lint runs it, and a trace, once more
        state.findings = lint_model(private_copy(state.deploy), torch.from_numpy(state.eager.smallest().x.copy()))
    state.findings = refine_findings(state.deploy, state.findings)
    for finding in state.findings:
        state.log(f"lint: {finding.message()}")

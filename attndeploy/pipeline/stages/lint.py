"""Stage `lint`: the export hazards of the model about to be exported, by module path."""

from __future__ import annotations

from attndeploy.lint.torch_lint import lint_model
from attndeploy.pipeline.state import PipelineState
from attndeploy.usercode import calling_user_code


def lint(state: PipelineState) -> None:
    assert state.deploy is not None and state.example is not None
    with calling_user_code(f"{state.name}'s forward"):
        state.findings = lint_model(state.deploy, state.example.clone())
    for finding in state.findings:
        state.log(f"lint: {finding.message()}")

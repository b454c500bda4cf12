"""Shared by the bad-input tests (issue 18): `TINY`, an in-process CLI run, and the contract of a refusal.

`TINY` is the issue's model: a 3 -> 4 channel conv (`--input 1x3x16x16`). `run_main` runs
`attndeploy.cli.main.main` in-process; `refused` asserts exit 2 with one stderr line
`error: <rule>: expected <x>, got <y>` (and, with `--json`, one JSON object whose fields
say the same); `refuse_export` makes any export a test failure, so a refusal is shown to
come before one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

TINY = "tests.bad_input_helpers:tiny"
TINY_INPUT = ["--input", "1x3x16x16"]


def tiny() -> nn.Module:
    """A 3 -> 4 channel 3x3 conv with fixed weights: (N, 3, H, W) -> (N, 4, H, W)."""
    torch.manual_seed(0)
    return nn.Conv2d(3, 4, 3, padding=1)


@dataclass
class CliRun:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.err.strip().splitlines()

    def json(self) -> dict:
        def refuse(token: str) -> None:
            raise ValueError(f"{token} is not standard JSON")

        value = json.loads(self.out, parse_constant=refuse)
        assert isinstance(value, dict), self.out
        return value


def run_main(capsys, *args: str) -> CliRun:
    """`attndeploy ARGS` in-process; no traceback may reach stderr."""
    from attndeploy.cli.main import main

    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    return CliRun(code, out, err)


def refused(capsys, args: list[str], *words: str) -> str:
    """`attndeploy ARGS` exits 2 with exactly one stderr line naming the rule, expected and got, holding `words`."""
    run = run_main(capsys, *args)
    assert run.code == 2, run.err
    assert len(run.lines) == 1 and run.lines[0].startswith("error: "), run.err
    line = run.lines[0]
    assert "expected " in line and ", got " in line, line
    for word in words:
        assert word in line, line
    if "--json" in args:
        error = run.json()
        assert f"error: {error['error']}" == line and error["rule"] and error["actual"] is not None
    return line


def refuse_export(monkeypatch) -> None:
    """Any export (the pipeline's export stage) fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("an export started: the input should have been refused first")

    monkeypatch.setattr("attndeploy.pipeline.export_stage", refuse)


def tree(folder: Path) -> list[str]:
    """Every path under `folder`, relative, sorted."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))

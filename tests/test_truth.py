"""The truth is built once per export, and nothing but `attndeploy.truth` runs the eager model for reference."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
from torch import nn

import attndeploy
from tests.detector_models import yolo, yolo_env  # noqa: F401  (fixture)

PACKAGE = str(Path(attndeploy.__file__).resolve().parent) + "/"
ALLOWED = ("truth/",     # the eager model for reference: only here
           "lint/")      # the lint runs a copy once to find hazards


class Counted(nn.Module):
    """A user's block whose every eager call (not a trace) records which attndeploy files are on the stack."""

    calls: list[list[str]] = []

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.gate = nn.Conv2d(8, 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (torch.onnx.is_in_onnx_export() or torch.jit.is_tracing() or torch.compiler.is_compiling()):
            Counted.calls.append([f.filename[len(PACKAGE):] for f in inspect.stack() if f.filename.startswith(PACKAGE)])
        y = self.conv(x)
        return y * torch.sigmoid(self.gate(y))


def stray(calls: list[list[str]]) -> list[list[str]]:
    """The eager calls made from no allowed part of the package (a call from outside it has an empty stack)."""
    return [stack for stack in calls if not any(part.startswith(ALLOWED) for part in stack)]


def test_the_check_sees_a_stray_run():
    Counted.calls = []
    Counted()(torch.rand(1, 3, 8, 8))          # a run from outside the truth (here: the test itself)
    assert stray(Counted.calls) == [[]]


@pytest.mark.parametrize("options", [{}, {"precision": "fp16"}])
def test_only_the_truth_runs_the_eager_model(options, tmp_path):
    Counted.calls = []
    res = attndeploy.export(attndeploy.randomize_(Counted()).eval(), (1, 3, 16, 16), tmp_path / "c.onnx", opset=17,
                            **options)
    assert res.passed
    assert Counted.calls and not stray(Counted.calls), stray(Counted.calls)
    lint_runs = [s for s in Counted.calls if not any(p.startswith("truth/") for p in s)]
    assert len(lint_runs) <= 2  # the lint's own run (and its trace's check), on a copy


def test_a_failed_verdict_localises_from_the_truth_without_new_eager_runs(tmp_path):
    class Drifts(Counted):
        def forward(self, x):
            y = super().forward(x)
            return y * 1.01 if torch.onnx.is_in_onnx_export() else y

    Counted.calls = []
    res = attndeploy.export(attndeploy.randomize_(Drifts()).eval(), (1, 3, 16, 16), tmp_path / "d.onnx", opset=17)
    assert not res.passed and res.localisation is not None
    assert Counted.calls and not stray(Counted.calls)


@pytest.mark.detector
def test_the_truth_of_a_yolo_at_640_holds_a_few_tens_of_mb(yolo_env, tmp_path):  # noqa: F811
    res = attndeploy.export(yolo("yolov8n").model, None, tmp_path / "y.onnx", imgsz=640)
    assert res.passed and res.evidence["truth_bytes"] < 48 * 2**20, res.evidence["truth_bytes"]

"""A candidate graph and what the judge said of it.

A route (an exporter at an opset, the TorchScript route, H, W fixed ...) yields an fp32
`Candidate`; a precision search yields an fp16 or INT8 one from it. `Judged` holds one
candidate's verdicts, one per backend, keyed by (precision, backend), and the family's
task check on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import onnx

from attndeploy.adapters.base import TaskCheck
from attndeploy.verdict import Key, Verdict


def rejected_path(path: Path) -> Path:
    return path.with_name(path.stem + ".rejected.onnx")


@dataclass(frozen=True)
class Candidate:
    """`proto` is what is written (to `path`, or `.rejected.onnx` beside it); `runnable` what onnxruntime runs (TensorRT
    plugin nodes swapped for standard ops); `exported` the graph before onnxsim (its node names map to modules);
    `input_axes` its dynamic input axes; `probes` the truth's probe shapes it is judged on; `label` names it among
    the run's graphs and keys its verdicts ("int8-ort-cpu" beside "int8"; the precision by default)."""

    route: str
    exporter: str
    precision: str
    proto: onnx.ModelProto
    runnable: bytes
    path: Path
    exported: onnx.ModelProto | None
    input_axes: tuple[int, ...]
    probes: tuple[tuple[int, ...], ...]
    simplified: bool = False
    label: str = ""

    @property
    def key(self) -> str:
        return self.label or self.precision


@dataclass
class Judged:
    candidate: Candidate
    verdicts: dict[Key, Verdict] = field(default_factory=dict)
    task: TaskCheck | None = None

    @property
    def passed(self) -> bool:
        """Every backend's verdict passed, and the task check did not fail (an undecidable one does not)."""
        task_ok = self.task is None or self.task.passed
        return bool(self.verdicts) and all(v.passed for v in self.verdicts.values()) and task_ok

    @property
    def written(self) -> Path:
        """Where the candidate is (to be) written."""
        path = self.candidate.path
        return path if self.passed else rejected_path(path)

    def first_failure(self) -> Verdict | None:
        return next((v for v in self.verdicts.values() if not v.passed), None)


__all__ = ["Candidate", "Judged", "rejected_path"]

"""Model-family adapters: prepare a model the way its family's own exporter does, before the pipeline exports it.

An adapter is chosen by the model's type (`attndeploy.adapters.adapter_for`), never by
patching anything at import. `prepare` gets the pipeline's private copy of the model (it
may change it freely) and returns a `Prepared`: the module to export and check, what was
done to it (said to the user), the graph's input/output names and which output axes are
dynamic, the family's shape rule (e.g. a stride), a default example shape, and the
metadata the family's tools read back from the ONNX file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from torch import nn

from attndeploy.defaults import INPUT_NAME
from attndeploy.lint.findings import TorchFinding
from attndeploy.settings import ExportSettings
from attndeploy.shapes import Shape


PASSED, FAILED, UNDECIDABLE = "passed", "failed", "undecidable"


@dataclass
class TaskCheck:
    """A task-level comparison of eager and a graph (detections, top-1 ...), beside the tensor parity.

    `status`: "passed", "failed", or "undecidable" — the images cannot decide (e.g. eager's
    scores are saturated or tied, so no threshold separates them from fp32 noise); the message
    says why. `passed` is False only for "failed": an undecidable check fails nothing (the
    tensor verdict stands), and the report says it could not decide.
    """

    name: str                                  # e.g. "detections"
    status: str
    message: str                               # one line: what matched, or what differed and where
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in (PASSED, FAILED, UNDECIDABLE):
            raise ValueError(f"TaskCheck status must be passed, failed or undecidable, got {self.status!r}")

    @property
    def passed(self) -> bool:
        return self.status != FAILED

    @property
    def decided(self) -> bool:
        return self.status != UNDECIDABLE

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "status": self.status, "message": self.message,
                **self.details}


class TaskChecker(Protocol):
    """A family's task check: a pure comparison of eager's and a graph's outputs on the family's task inputs
    (`Prepared.task_inputs`), each list in the graph's output order, with eager's float64 outputs there when the
    truth has them (to tell an ill-conditioned model: "undecidable")."""

    def __call__(self, eager: Sequence[np.ndarray], graph: Sequence[np.ndarray], precision: str,
                 eager64: Sequence[np.ndarray] | None = None) -> TaskCheck:
        """The verdict (passed / failed / undecidable) for the graph of `precision`."""


@dataclass
class Prepared:
    """What an adapter hands the pipeline.

    `output_names`: None keeps the flattened eager names (`output`, `output0`, ...);
    `output_axes[name]`: the dynamic dims of that output (absent: every dim);
    `hw_multiple`: H and W must be multiples of it (a detector's largest stride), 1 if unknown;
    `example`: the default example shape when the settings give none;
    `metadata`: written into the ONNX file's `metadata_props` (strings);
    `task_inputs`: the family's own inputs for a task-level check (a detector's letterboxed images, (K, C, H, W));
    `task_batch`: the batch the model and graph take when it is fixed (NMS in the graph), None when any: the task
    inputs then go through in chunks of it (`attndeploy.adapters.base.in_batches`);
    `task_check`: compares eager's and a graph's outputs on them (None: no task check);
    `engine_shapes`: (min, opt, max) of a TensorRT profile as the family derives them from the example;
    `postprocess`: what the graph does after the model's head, for the report (ultralytics: {"mode":
    "external" | "embedded" | "free", "max_det", "conf", "iou", "agnostic_nms", "batch"});
    `row_outputs`: outputs holding detection rows (NMS in the graph, an NMS-free head, RT-DETR):
    discrete values, where elementwise parity is ill-posed (a score at the top-k cut or an NMS
    decision within noise moves whole rows, in eager's own float64 run too); judge each with
    `task_check([eager], [graph], precision)` at every probe instead (a `TaskCheck`).
    """

    model: nn.Module
    family: str = "torch"
    notes: list[str] = field(default_factory=list)
    input_name: str = INPUT_NAME
    output_names: list[str] | None = None
    output_axes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    hw_multiple: int = 1
    example: Shape | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    name: str | None = None
    task: str | None = None
    task_inputs: np.ndarray | None = None
    task_batch: int | None = None
    task_check: TaskChecker | None = None
    engine_shapes: tuple[Shape, Shape, Shape] | None = None
    postprocess: dict[str, Any] = field(default_factory=dict)
    row_outputs: tuple[str, ...] = ()


class Adapter(Protocol):
    """One model family (ultralytics, timm, torchvision ...)."""

    family: str

    def matches(self, model: nn.Module) -> bool:
        """Whether `model` belongs to this family (by type, without importing the family's package)."""

    def prepare(self, model: nn.Module, settings: ExportSettings) -> Prepared:
        """Prepare the private copy `model` for export (eval, fuse, heads in export mode ...)."""

    def refine_findings(self, model: nn.Module, findings: list[TorchFinding]) -> list[TorchFinding]:
        """The lint's findings about this family's layers anywhere in `model` (a user may wrap them), in the
        family's terms: a detector head's baked anchors are "keep anchors dynamic", not "make it a Parameter"."""


class PlainAdapter:
    """Any other `nn.Module`: exported as it is (eval mode, deploy twins swapped in by the pipeline)."""

    family = "torch"

    def matches(self, model: nn.Module) -> bool:
        return True

    def prepare(self, model: nn.Module, settings: ExportSettings) -> Prepared:
        return Prepared(model.eval())

    def refine_findings(self, model: nn.Module, findings: list[TorchFinding]) -> list[TorchFinding]:
        return findings


def metadata_strings(values: Mapping[str, Any]) -> dict[str, str]:
    """`metadata_props` values are strings: dicts and lists as their `repr` (what ultralytics writes and reads)."""
    return {k: v if isinstance(v, str) else repr(v) for k, v in values.items()}


def in_batches(run: Callable[[np.ndarray], Sequence[np.ndarray]], inputs: np.ndarray,
               batch: int | None) -> list[np.ndarray]:
    """`run(x) -> outputs` on `inputs` (K, ...) in chunks of a model's fixed `batch` (None: all at once; the last
    chunk padded with its last input), the outputs joined again along dim 0 and trimmed to K."""
    if batch is None or batch == len(inputs):
        return [np.asarray(o) for o in run(inputs)]
    chunks = []
    for start in range(0, len(inputs), batch):
        chunk = inputs[start:start + batch]
        pad = np.repeat(chunk[-1:], batch - len(chunk), axis=0)
        chunks.append([np.asarray(o) for o in run(np.ascontiguousarray(np.concatenate([chunk, pad])))])
    return [np.concatenate(parts)[:len(inputs)] for parts in zip(*chunks)]

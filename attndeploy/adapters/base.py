"""Model-family adapters: prepare a model the way its family's own exporter does, before the pipeline exports it.

An adapter is chosen by the model's type (`attndeploy.adapters.adapter_for`), never by
patching anything at import. `prepare` gets the pipeline's private copy of the model (it
may change it freely) and returns a `Prepared`: the module to export and check, what was
done to it (said to the user), the graph's input/output names and which output axes are
dynamic, the family's shape rule (e.g. a stride), a default example shape, and the
metadata the family's tools read back from the ONNX file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from torch import nn

from attndeploy.defaults import INPUT_NAME
from attndeploy.lint.findings import TorchFinding
from attndeploy.settings import ExportSettings
from attndeploy.shapes import Shape


@dataclass
class TaskCheck:
    """A task-level comparison of eager and a graph (detections, top-1 ...), beside the tensor parity."""

    name: str                                  # e.g. "detections"
    passed: bool
    message: str                               # one line: what matched, or what differed and where
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "message": self.message, **self.details}


# (eager's outputs on the task inputs, the graph's on the same inputs, the graph's precision) -> TaskCheck
TaskChecker = Callable[[list[np.ndarray], list[np.ndarray], str], TaskCheck]


@dataclass
class Prepared:
    """What an adapter hands the pipeline.

    `output_names`: None keeps the flattened eager names (`output`, `output0`, ...);
    `output_axes[name]`: the dynamic dims of that output (absent: every dim);
    `hw_multiple`: H and W must be multiples of it (a detector's largest stride), 1 if unknown;
    `example`: the default example shape when the settings give none;
    `metadata`: written into the ONNX file's `metadata_props` (strings);
    `task_inputs`: the family's own inputs for a task-level check (a detector's letterboxed images, (K, C, H, W));
    `task_check`: compares eager's and a graph's outputs on them (None: no task check);
    `engine_shapes`: (min, opt, max) of a TensorRT profile as the family derives them from the example.
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
    task_check: TaskChecker | None = None
    engine_shapes: tuple[Shape, Shape, Shape] | None = None


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

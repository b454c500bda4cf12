"""What an export hands back: the file, the swaps, the graph's size, and the parity evidence."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attndeploy.convert import Swap
from attndeploy.exporting.simplify import SimplifyReport
from attndeploy.parity.compare import ParityReport


@dataclass
class ExportResult:
    """`onnx_path` is the final model (the reduced-precision one when asked for); when a check failed it is
    the `.rejected.onnx` file. `parity` is the final graph on the first backend; `parities` holds every
    graph on every backend (`"<precision>/<backend>"`)."""

    name: str
    onnx_path: Path
    opset: int
    exporter: str
    dynamic: bool
    input_shape: tuple[int, ...]
    parity: ParityReport
    swaps: list[Swap] = field(default_factory=list)
    simplify: SimplifyReport | None = None
    node_counts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seed: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    rewrites: dict = field(default_factory=dict)
    lint: list[dict] = field(default_factory=list)
    parities: dict[str, ParityReport] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)       # precision -> written path
    precision: str = "fp32"
    engine: Any = None                                         # tensorrt.deploy.EngineReport
    notes: list[str] = field(default_factory=list)
    tasks: dict[str, Any] = field(default_factory=dict)       # precision -> adapters.base.TaskCheck
    evidence: dict[str, Any] = field(default_factory=dict)    # shape rule, parity inputs, fp32 noise
    route: str = ""                                           # e.g. "dynamo", "torchscript-17+version-converter-18"
    localisation: Any = None                                  # attndeploy.localise.Localisation, where parity failed

    @property
    def passed(self) -> bool:
        return (all(p.passed for p in self.parities.values()) and all(t.passed for t in self.tasks.values())
                and (self.engine is None or self.engine.passed))

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "onnx": str(self.onnx_path),
            "opset": self.opset,
            "exporter": self.exporter,
            "route": self.route,
            "localisation": self.localisation.to_dict() if self.localisation is not None else None,
            "dynamic": self.dynamic,
            "input_shape": list(self.input_shape),
            "seed": self.seed,
            "precision": self.precision,
            "passed": self.passed,
            "parity": self.parity.to_dict(),
            "parities": {k: v.to_dict() for k, v in self.parities.items()},
            "files": self.files,
            "swaps": [vars(s) for s in self.swaps],
            "simplify": vars(self.simplify) if self.simplify else None,
            "node_counts": self.node_counts,
            "warnings": self.warnings,
            "notes": self.notes,
            "tasks": {k: v.to_dict() for k, v in self.tasks.items()},
            "evidence": self.evidence,
            "seconds": self.seconds,
            "rewrites": self.rewrites,
            "lint": self.lint,
            **({"engine": self.engine.to_dict()} if self.engine is not None else {}),
        }

"""What an export hands back: the file, the swaps, the graph's size, and the verdicts against the truth."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attndeploy.convert import Swap
from attndeploy.exporting.simplify import SimplifyReport
from attndeploy.verdict import Key, TruthData, Verdict, key_label


@dataclass
class ExportResult:
    """`onnx_path` is the final model (the reduced-precision one when asked for); when a check failed it is the
    `.rejected.onnx` file. `parity` is the final graph's verdict on the first backend; `parities` holds every
    graph's on every backend, keyed by (precision, backend)."""

    name: str
    onnx_path: Path
    opset: int
    exporter: str
    dynamic: bool
    input_shape: tuple[int, ...]
    parity: Verdict
    swaps: list[Swap] = field(default_factory=list)
    simplify: SimplifyReport | None = None
    node_counts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seed: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    rewrites: dict = field(default_factory=dict)
    lint: list[dict] = field(default_factory=list)
    parities: dict[Key, Verdict] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)       # precision -> written path
    precision: str = "fp32"
    engine: Any = None                                         # tensorrt.deploy.EngineReport of the final graph
    engines: dict[str, Any] = field(default_factory=dict)     # graph label -> EngineReport (a run's `also` graphs)
    notes: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)           # what stages chose, for the report only
    tasks: dict[str, Any] = field(default_factory=dict)       # precision -> adapters.base.TaskCheck
    evidence: dict[str, Any] = field(default_factory=dict)    # shape rule, parity inputs, the truth's reference
    route: str = ""                                           # e.g. "dynamo-18", "torchscript-17+version-converter-18"
    localisation: Any = None                                  # attndeploy.localise.Localisation, where a verdict failed
    bundle: dict[str, Any] = field(default_factory=dict)      # what the device bundle holds (files and sizes)
    passed: bool = False                                      # every candidate's verdicts and task check, the engine
    truth: TruthData | None = None                            # the probes every verdict was judged on (not in to_dict)

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
            "parities": {key_label(k): v.to_dict() for k, v in self.parities.items()},
            "files": self.files,
            "swaps": [vars(s) for s in self.swaps],
            "simplify": vars(self.simplify) if self.simplify else None,
            "node_counts": self.node_counts,
            "warnings": self.warnings,
            "notes": self.notes,
            "details": self.details,
            "tasks": {k: v.to_dict() for k, v in self.tasks.items()},
            "evidence": self.evidence,
            "seconds": self.seconds,
            "rewrites": self.rewrites,
            "lint": self.lint,
            "bundle": self.bundle,
            **({"engine": self.engine.to_dict()} if self.engine is not None else {}),
            **({"engines": {k: e.to_dict() for k, e in self.engines.items()}} if len(self.engines) > 1 else {}),
        }

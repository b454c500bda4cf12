"""What an export hands back: the file, the swaps, the graph's size, and the parity evidence."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from attndeploy.convert import Swap
from attndeploy.exporting.simplify import SimplifyReport
from attndeploy.parity import ParityReport


@dataclass
class ExportResult:
    """`onnx_path` is the final model; when parity failed it is the `.rejected.onnx` file."""

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

    @property
    def passed(self) -> bool:
        return self.parity.passed

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "onnx": str(self.onnx_path),
            "opset": self.opset,
            "exporter": self.exporter,
            "dynamic": self.dynamic,
            "input_shape": list(self.input_shape),
            "seed": self.seed,
            "parity": self.parity.to_dict(),
            "swaps": [vars(s) for s in self.swaps],
            "simplify": vars(self.simplify) if self.simplify else None,
            "node_counts": self.node_counts,
            "warnings": self.warnings,
            "seconds": self.seconds,
            "rewrites": self.rewrites,
            "lint": self.lint,
        }

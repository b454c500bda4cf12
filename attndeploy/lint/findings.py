"""What the lints report: `TorchFinding` (a PyTorch model before export, with the consequence phrases its
checks share) and `Finding` (an ONNX file against a TensorRT parser)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace

FAILS = "fails to export"
BAKES = "exports with the sample's shapes baked in"
DEVICE = "pins a device"
PRECISION = "loses precision or support"
WEIGHTS = "is missing from the state_dict"
ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class TorchFinding:
    """One hazardous call (or attribute) seen while running the model.

    `path` is the module path (``""`` for the root), `hazard` a short kind, `call` what
    was called with which sizes, `consequence` what the exporters do with it, `rewrite`
    the `export_rewrites` kind that handles it (None: change the code, see `hint`),
    `site` the user's ``file:line``, `count` how many times it ran.
    """

    path: str
    hazard: str
    call: str
    consequence: str
    rewrite: str | None
    hint: str = ""
    site: str = ""
    count: int = 1

    def message(self) -> str:
        """E.g. ``backbone.layer3.1.attn: F.adaptive_avg_pool2d(output_size=(20, 1)) fails to export ...``."""
        where = self.path or "<root>"
        fix = f"handled by the export-time rewrite '{self.rewrite}'" if self.rewrite else f"fix: {self.hint}"
        text = f"{where}: {self.call} {self.consequence} ({self.hazard}); {fix}"
        if self.rewrite and self.hint:
            text += f"; {self.hint}"
        return text + (f" [{self.site}]" if self.site else "") + (f" x{self.count}" if self.count > 1 else "")

    def to_dict(self) -> dict[str, object]:
        return {"path": self.path, "hazard": self.hazard, "call": self.call, "consequence": self.consequence,
                "rewrite": self.rewrite, "hint": self.hint, "site": self.site, "count": self.count}


def merge(findings: Iterable[TorchFinding]) -> list[TorchFinding]:
    """`findings` in order, one per (path, hazard, call, site), their counts added."""
    out: dict[tuple[str, str, str, str], TorchFinding] = {}
    for f in findings:
        key = (f.path, f.hazard, f.call, f.site)
        out[key] = replace(out[key], count=out[key].count + f.count) if key in out else f
    return list(out.values())


@dataclass(frozen=True)
class Finding:
    """One thing the parser will refuse (`error`) or may refuse or mishandle (`warning`)."""

    severity: str
    rule: str
    node: str
    op_type: str
    scope: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    def format(self) -> str:
        where = f"{self.node} ({self.op_type})" if self.node or self.op_type else "model"
        scope = f" in module '{self.scope}'" if self.scope else ""
        return f"{self.severity} [{self.rule}] {where}{scope}: {self.message}"


__all__ = ["BAKES", "DEVICE", "ERROR", "FAILS", "PRECISION", "WARNING", "WEIGHTS", "Finding", "TorchFinding",
           "merge"]

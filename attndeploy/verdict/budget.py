"""What a candidate is held to: the fp32 rule on float64, a tolerance the user gave, or a reduced-precision floor.

    Budget.float64()                  fp32 graphs and engines: `rule` (FACTOR x eager fp32's distance to float64)
    Budget.given(atol=1e-4, rtol=0)   `--atol/--rtol`: |got - eager| <= atol or <= rtol |eager| per element
    Budget.cosine(0.9999, "fp16")     fp16 / INT8: every output's cosine with eager fp32 at least the floor

Every budget fails a NaN or Inf where the truth is finite. Reduced precision also needs the
graph to run at its precision: `min_reduced_fraction` of its weighted ops (Conv, MatMul,
Gemm ...) must be fp16 / INT8, else the candidate is not what was asked for.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from attndeploy.verdict.rule import FACTOR

FP16_MIN_COSINE = 0.9999
INT8_MIN_COSINE = 0.99


@dataclass(frozen=True)
class Budget:
    """`kind`: "float64" | "given" | "cosine"; the fields that kind reads."""

    kind: str = "float64"
    factor: float = FACTOR
    atol: float = 0.0
    rtol: float = 0.0
    min_cosine: float = 0.0
    precision: str = "fp32"
    min_reduced_fraction: float = 0.0

    @classmethod
    def float64(cls, factor: float = FACTOR) -> Budget:
        return cls("float64", factor=factor)

    @classmethod
    def given(cls, atol: float, rtol: float) -> Budget:
        return cls("given", atol=atol, rtol=rtol)

    @classmethod
    def cosine(cls, min_cosine: float, precision: str) -> Budget:
        """A reduced-precision floor; at least one weighted op must run at `precision`."""
        return cls("cosine", min_cosine=min_cosine, precision=precision, min_reduced_fraction=1e-9)

    def describe(self) -> str:
        """The rule in words, for the report and the table's title."""
        if self.kind == "float64":
            return f"distance to float64 <= {self.factor:g} x eager fp32's, per channel"
        if self.kind == "given":
            return f"|graph - eager| <= atol {self.atol:g} or rtol {self.rtol:g} x |eager|"
        return f"cosine >= {self.min_cosine:g} against eager fp32, every value finite"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rule": self.describe()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Budget:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def reduced_budget(precision: str, int8_target: float = INT8_MIN_COSINE) -> Budget:
    """The budget of an fp16 or INT8 candidate (INT8's floor is the export's target)."""
    return Budget.cosine(FP16_MIN_COSINE if precision == "fp16" else int8_target, precision)


__all__ = ["FP16_MIN_COSINE", "INT8_MIN_COSINE", "Budget", "reduced_budget"]

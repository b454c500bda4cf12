"""The precision an engine actually runs at, read from the engine by TensorRT's engine inspector.

    with TensorRTRunner("cbam.fp16.engine", require_metadata=False) as runner:
        found = engine_precision(runner.engine)      # EnginePrecision
    found.by_precision        # {"fp16": 41, "fp32": 6}: layers by the data type they compute in
    found.fraction("fp16")    # 0.9: weighted layers (convolutions, matrix multiplies) at fp16

`IEngineInspector.get_engine_information(JSON)` lists every layer; with the engine built at
`ProfilingVerbosity.DETAILED` (Polygraphy's default, and `--profilingVerbosity=detailed` in the
bundle's `build_engine.sh`) each layer carries its inputs' and outputs' `"Format/Datatype"`
(TensorRT 8.6 / 10: "Channel major FP16 format where channel % 8 == 0"; 11: separate
"Datatype" / "Format"). A layer computes in INT8 when an input is INT8, else in fp16 when
an input or output is fp16 (or bf16), else in fp32. An engine built at a lower verbosity
lists names only: the precision is then unknown, and said so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import tensorrt as trt

# TensorRT's words for data types in layer information, checked in this order (first match wins).
_DATATYPES = (("INT8", "int8"), ("FP8", "fp8"), ("FLOAT8", "fp8"), ("BFLOAT16", "bf16"), ("BF16", "bf16"),
              ("HALF", "fp16"), ("FP16", "fp16"), ("FLOAT", "fp32"), ("FP32", "fp32"), ("INT32", "int32"),
              ("INT64", "int64"), ("BOOL", "bool"))
_REDUCED = ("int8", "fp8", "fp16", "bf16")
_WEIGHTED = ("conv", "gemm", "matrixmultiply", "matmul", "fullyconnected", "deconvolution")


def tensor_datatype(info: dict[str, Any]) -> str:
    """One tensor's data type in a layer's JSON ("fp16", "int8", ...; "" when not given)."""
    text = " ".join(str(info.get(k, "")) for k in ("Format/Datatype", "Datatype", "Format")).upper()
    return next((name for word, name in _DATATYPES if word in text), "")


def layer_precision(layer: dict[str, Any]) -> str:
    """The precision a layer computes in (see the module docstring); "" when the JSON gives no data types."""
    inputs = [tensor_datatype(t) for t in layer.get("Inputs") or []]
    outputs = [tensor_datatype(t) for t in layer.get("Outputs") or []]
    if "int8" in inputs or "fp8" in inputs:
        return "int8" if "int8" in inputs else "fp8"
    for reduced in ("fp16", "bf16"):
        if reduced in inputs or reduced in outputs:
            return reduced
    return "fp32" if "fp32" in inputs + outputs else ""


@dataclass
class EnginePrecision:
    """Layers by the precision they compute in; `weighted` the same for convolutions and matrix multiplies."""

    layers: int = 0
    by_precision: dict[str, int] = field(default_factory=dict)
    weighted: dict[str, int] = field(default_factory=dict)
    note: str = ""

    @property
    def known(self) -> bool:
        return bool(self.by_precision)

    def fraction(self, precision: str) -> float | None:
        """Weighted layers at `precision` (INT8 counts for fp16 too: both are reduced) over all weighted layers
        (every layer with a known precision where none is weighted); None when unknown."""
        counts = self.weighted or self.by_precision
        total = sum(counts.values())
        if not total:
            return None
        wanted = (precision,) if precision != "fp16" else ("fp16", "bf16", "int8", "fp8")
        return sum(n for p, n in counts.items() if p in wanted) / total

    def describe(self) -> str:
        if not self.known:
            return self.note or "unknown"
        order = sorted(self.by_precision.items(), key=lambda kv: -kv[1])
        return f"{self.layers} layers: " + ", ".join(f"{n} {p}" for p, n in order)

    def to_dict(self) -> dict[str, Any]:
        return {"layers": self.layers, "by_precision": self.by_precision, "weighted": self.weighted,
                "note": self.note, "summary": self.describe()}


def precision_from_information(text: str) -> EnginePrecision:
    """`EnginePrecision` from `get_engine_information(LayerInformationFormat.JSON)`'s text."""
    data = json.loads(text)
    layers = data.get("Layers", []) if isinstance(data, dict) else []
    found = EnginePrecision(len(layers))
    for layer in layers:
        if not isinstance(layer, dict):  # names only: the engine was built below DETAILED verbosity
            continue
        precision = layer_precision(layer)
        if not precision:
            continue
        found.by_precision[precision] = found.by_precision.get(precision, 0) + 1
        kind = str(layer.get("LayerType", "")).lower()
        if any(word in kind for word in _WEIGHTED):
            found.weighted[precision] = found.weighted.get(precision, 0) + 1
    if layers and not found.known:
        found.note = ("the engine lists layer names only (built below ProfilingVerbosity.DETAILED; trtexec: "
                      "--profilingVerbosity=detailed): its precision cannot be read")
    return found


def engine_precision(engine: trt.ICudaEngine) -> EnginePrecision:
    """What `engine` computes in, from TensorRT's engine inspector (see the module docstring)."""
    import tensorrt as trt

    inspector = engine.create_engine_inspector()
    return precision_from_information(inspector.get_engine_information(trt.LayerInformationFormat.JSON))


def is_reduced(precision: str) -> bool:
    return precision in _REDUCED


__all__ = ["EnginePrecision", "engine_precision", "is_reduced", "layer_precision", "precision_from_information",
           "tensor_datatype"]

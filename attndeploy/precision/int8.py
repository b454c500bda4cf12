"""INT8 Q/DQ graphs through onnxruntime.quantization (`quantize_static`, QDQ format), in two flavours.

    q = Quantizer(fp32_model, calibration, "input", flavour="trt", method="minmax")
    int8 = q.quantize()                               # every candidate node quantized
    int8 = q.quantize(exclude=["/model.9/cv1/conv/Conv"])   # the same calibration, one node left float

- "trt" (TensorRT's explicit quantization): symmetric int8 activations and weights (zero
  point 0), per-channel weights on Conv / ConvTranspose / Gemm / MatMul, Q/DQ only on the
  inputs of those weighted ops and on both inputs of residual Adds (an Add fed by a
  weighted op: TensorRT fuses the add into the conv), no Q/DQ on outputs, biases left
  float (onnxruntime's int32 bias quantization is refused by TensorRT's parser,
  onnx-tensorrt#850). Quantizing every op (a Softmax output with one per-tensor scale)
  costs gcnet cosine 0.967; weighted ops only keep the zoo >= 0.999.
- "ort-cpu" (onnxruntime's fast x86 path): uint8 asymmetric activations, int8 symmetric
  per-channel weights, every op onnxruntime quantizes, int32 biases.

Calibration: `calibration` (K, C, H, W) float32, fed in batches the graph accepts;
methods "minmax", "entropy", "percentile" (99.999th) are onnxruntime's calibrators; the
tensor ranges are computed once per `Quantizer` and cached, so the sensitivity analysis
re-quantizes without re-calibrating. Q/DQ nodes take the module scope of the node they
feed, so reduced-precision reports name modules.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from attndeploy.errors import require
from attndeploy.precision.fp16 import name_nodes
from attndeploy.precision.plan import QDQ_OPS

WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
FLAVOURS = ("trt", "ort-cpu")
CALIBRATION_BATCH = 8


def _constants(model: onnx.ModelProto) -> set[str]:
    found = {t.name for t in model.graph.initializer}
    return found | {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}


def weighted_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the Conv / ConvTranspose / Gemm / MatMul nodes with a constant weight (input 1)."""
    constants = _constants(model)
    return [n.name for n in model.graph.node
            if n.op_type in WEIGHTED_OPS and len(n.input) > 1 and n.input[1] in constants]


def residual_adds(model: onnx.ModelProto, weighted: Iterable[str]) -> dict[str, list[str]]:
    """{Add node: the weighted nodes feeding it} for Adds of two computed tensors, one written by a weighted op."""
    chosen = set(weighted)
    writer = {o: n.name for n in model.graph.node for o in n.output if o}
    constants = _constants(model)
    adds: dict[str, list[str]] = {}
    for node in model.graph.node:
        if node.op_type != "Add" or len(node.input) != 2 or any(i in constants for i in node.input):
            continue
        feeders = [writer[i] for i in node.input if writer.get(i) in chosen]
        if feeders:
            adds[node.name] = feeders
    return adds


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over (K, C, H, W) samples, `batch` at a time."""

    def __init__(self, data: np.ndarray, input_name: str, batch: int) -> None:
        self.data, self.input_name, self.batch = data, input_name, batch
        self.rewind()

    def rewind(self) -> None:
        self.items: Iterator[np.ndarray] = (self.data[i:i + self.batch]
                                            for i in range(0, len(self.data) - self.batch + 1, self.batch))

    def get_next(self) -> dict[str, np.ndarray] | None:
        item = next(self.items, None)
        return None if item is None else {self.input_name: np.ascontiguousarray(item, np.float32)}

    def __len__(self) -> int:
        return len(self.data) // self.batch


def _batch_of(model: onnx.ModelProto, input_name: str) -> int | None:
    """The graph input's fixed batch size, or None when the batch axis is dynamic."""
    value = next((v for v in model.graph.input if v.name == input_name), None)
    dims = value.type.tensor_type.shape.dim if value is not None else []
    return int(dims[0].dim_value) if dims and dims[0].HasField("dim_value") else None


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """onnxruntime.quantization logs warnings (pre-processing advice) through the root logger."""
    root = logging.getLogger()
    saved = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(saved)


def adopt_scopes(model: onnx.ModelProto) -> None:
    """Give each Q/DQ node the scope (dynamo metadata, TorchScript name prefix) of the node it feeds."""
    readers: dict[str, list[onnx.NodeProto]] = {}
    for n in model.graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)

    def owner(node: onnx.NodeProto, depth: int = 0) -> onnx.NodeProto | None:
        for reader in readers.get(node.output[0], []) if node.output else []:
            if reader.op_type not in QDQ_OPS:
                return reader
            found = owner(reader, depth + 1) if depth < 3 else None
            if found is not None:
                return found
        return None

    for node in model.graph.node:
        if node.op_type not in QDQ_OPS or node.metadata_props:
            continue
        reader = owner(node)
        if reader is None:
            continue
        node.metadata_props.extend(reader.metadata_props)
        if reader.name.startswith("/") and not node.name.startswith("/"):
            node.name = reader.name.rsplit("/", 1)[0] + "/" + node.name.replace("/", "_")


class Quantizer:
    """Q/DQ copies of one fp32 graph from one calibration (see the module docstring).

    `calibration`: (K, C, H, W) float32 samples; `keep_float`: node names never quantized.
    """

    def __init__(self, model: onnx.ModelProto, calibration: np.ndarray, input_name: str, flavour: str = "trt",
                 method: str = "minmax", keep_float: Iterable[str] = ()) -> None:
        require(flavour in FLAVOURS, "int8_flavour must be a known flavour", " or ".join(FLAVOURS), repr(flavour))
        require(method in METHODS, "calibration_method must be a known method", ", ".join(METHODS), repr(method))
        self.model = onnx.ModelProto()
        self.model.CopyFrom(model)
        name_nodes(self.model)
        fixed = _batch_of(self.model, input_name)
        batch = fixed or min(CALIBRATION_BATCH, len(calibration))
        require(len(calibration) >= batch, f"the graph takes batches of {batch}: calibration needs at least that "
                "many samples", f">= {batch} samples", len(calibration))
        self.reader = _Reader(calibration, input_name, batch)
        self.flavour, self.method, self.input_name = flavour, method, input_name
        self.keep_float = set(keep_float)   # never quantized (a keep-fp32 policy)
        self.weighted = weighted_nodes(self.model)
        self.adds = residual_adds(self.model, self.weighted)
        self._tmp = tempfile.TemporaryDirectory(prefix="attndeploy-int8-")
        self.cache = Path(self._tmp.name) / "calibration.json"
        self.source = Path(self._tmp.name) / "fp32.onnx"   # quantize_static turns a ModelProto's tensors external
        onnx.save(self.model, str(self.source))

    @property
    def candidates(self) -> list[str]:
        """The nodes this flavour quantizes (trt: weighted ops and residual Adds; ort-cpu: every node)."""
        found = [*self.weighted, *self.adds] if self.flavour == "trt" else [n.name for n in self.model.graph.node]
        return [n for n in found if n not in self.keep_float]

    def _options(self) -> dict[str, Any]:
        from onnxruntime.quantization import CalibrationMethod, QuantType

        common: dict[str, Any] = {"per_channel": True, "weight_type": QuantType.QInt8,
                                  "calibrate_method": getattr(CalibrationMethod, METHODS[self.method]),
                                  "calibration_cache_path": self.cache}
        if self.flavour == "ort-cpu":
            return {**common, "activation_type": QuantType.QUInt8, "extra_options": {"WeightSymmetric": True}}
        ops = [*WEIGHTED_OPS, "Add"]
        return {**common, "activation_type": QuantType.QInt8, "op_types_to_quantize": ops,
                "extra_options": {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False,
                                  "OpTypesToExcludeOutputQuantization": ops, "MatMulConstBOnly": True,
                                  "CalibTensorRangeSymmetric": self.method != "minmax",
                                  "QDQOpTypePerChannelSupportToAxis": {"MatMul": -1}}}

    def quantize(self, exclude: Iterable[str] = (), only: Iterable[str] | None = None) -> onnx.ModelProto:
        """A Q/DQ copy: the candidates (or those in `only`) less the nodes `exclude` (and Adds left unfed).

        `input: (N, C, H, W) float32 -> outputs as the fp32 graph's, float32`.
        """
        from onnxruntime.quantization import QuantFormat, quantize_static

        skip = set(exclude)
        chosen = [n for n in (self.candidates if only is None else only) if n not in skip]
        if self.flavour == "trt":  # a residual Add is quantized with at least one of its weighted inputs
            chosen = [n for n in chosen if n not in self.adds or any(f in chosen for f in self.adds[n])]
        out = Path(self._tmp.name) / "int8.onnx"
        self.reader.rewind()
        with _quiet_quantizer():
            quantize_static(self.source, out, self.reader, quant_format=QuantFormat.QDQ,
                            nodes_to_quantize=chosen or ["<none>"], **self._options())
        model = onnx.load(str(out))
        adopt_scopes(model)
        return model

    def close(self) -> None:
        self._tmp.cleanup()

    def __enter__(self) -> Quantizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["FLAVOURS", "METHODS", "WEIGHTED_OPS", "Quantizer", "adopt_scopes", "residual_adds", "weighted_nodes"]

"""Constants the whole package shares, each defined once: opsets, exporters, backends, tolerances.

Tolerances follow the architecture's table (fp32 unless said); the registry keeps tighter
per-module ones where they were measured (`attndeploy.registry`).
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_OPSET, MAX_OPSET = 13, 20
DEFAULT_OPSET = 17
DYNAMO_MIN_OPSET = 18  # the dynamo exporter writes >= 18 (asked for 17 it writes 18 and only warns)
EXPORTERS = ("auto", "torchscript", "dynamo")
CONCRETE_EXPORTERS = ("torchscript", "dynamo")

# onnxruntime falls back along each list; CPU is always last.
ORT_PROVIDERS: dict[str, tuple[str, ...]] = {
    "onnxruntime-cpu": ("CPUExecutionProvider",),
    "onnxruntime-cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "onnxruntime-trt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
}
TENSORRT_BACKEND = "tensorrt"
FILE_BACKENDS = (*ORT_PROVIDERS, TENSORRT_BACKEND)

INPUT_NAME = "input"
DEFAULT_IMGSZ = 640  # a detector's example H and W when --imgsz is not given (ultralytics' default)


@dataclass(frozen=True)
class Tolerance:
    """An element fails only if it exceeds both `atol` and `rtol * |reference|` (Polygraphy's rule)."""

    atol: float
    rtol: float


DEPLOY_TOL = Tolerance(1e-5, 1e-4)       # reference vs deploy twin, eager fp32
ONNX_TOL = Tolerance(1e-4, 1e-3)         # eager vs onnxruntime, fp32
TRT_FP32_TOL = Tolerance(1e-4, 1e-3)     # eager vs TensorRT fp32 (TF32 off)
TRT_FP16_TOL = Tolerance(1e-2, 1e-2)     # eager vs TensorRT fp16, plus the cosine floor below
TRT_FP16_MIN_COSINE = 0.999

# Reduced precision against eager fp32 (the architecture's table). fp16: every output's cosine >= 0.9999 and every
# value finite, in plain onnxruntime AND strict-fp16 evaluation (each float16 tensor rounded). int8: cosine >= 0.99
# (17 dB SQNR for small errors) and the task check; per-element bounds mean little after quantization.
FP16_MIN_COSINE = 0.9999
INT8_MIN_COSINE = 0.99
TRT_INT8_MIN_COSINE = INT8_MIN_COSINE    # eager fp32 vs a TensorRT engine built from the Q/DQ graph
FP16_MAX = 65504.0                       # the largest finite float16

"""Pick a runner for a model file by backend name; a backend that is not installed says so."""

from __future__ import annotations

from pathlib import Path

from attndeploy.defaults import FILE_BACKENDS, ORT_PROVIDERS, TENSORRT_BACKEND
from attndeploy.errors import require, unknown_name
from attndeploy.runtimes.base import Runner
from attndeploy.runtimes.onnxruntime_runner import (
    OnnxRuntimeRunner,
    check_backend_installed,
)
from attndeploy.tensorrt.runner import TensorRTRunner


def make_runner(backend: str, model_path: Path, threads: int = 0) -> Runner:
    """An unactivated runner for `model_path` (.onnx for onnxruntime-*, .engine for tensorrt).

    `threads`: onnxruntime's intra-op threads (0: all cores). A missing TensorRT is reported
    when the runner activates (`UsageError` with the install hint).
    """
    if backend not in FILE_BACKENDS:
        raise unknown_name("backend", backend, FILE_BACKENDS)
    require(model_path.is_file(), "the model file must exist", "an existing file", str(model_path))
    if backend == TENSORRT_BACKEND:
        require(model_path.suffix == ".engine", "the tensorrt backend runs engine files", "a .engine file",
                model_path.name, "build one with `attndeploy export NAME --engine`")
        return TensorRTRunner(model_path)
    require(model_path.suffix == ".onnx", f"the {backend} backend runs ONNX files", "a .onnx file", model_path.name)
    check_backend_installed(backend)
    return OnnxRuntimeRunner(model_path, ORT_PROVIDERS[backend], threads)

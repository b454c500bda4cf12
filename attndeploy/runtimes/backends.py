"""Pick a runner for a model file by backend name; a backend that is not installed says so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from attndeploy.errors import require, unknown_name
from attndeploy.runtimes.onnxruntime_runner import (
    PROVIDERS,
    OnnxRuntimeRunner,
    check_backend_installed,
)

FILE_BACKENDS = (*PROVIDERS, "tensorrt")


def make_runner(backend: str, model_path: Path, threads: int = 0) -> Any:
    """An unactivated runner for `model_path` (.onnx for onnxruntime-*, .engine for tensorrt)."""
    if backend not in FILE_BACKENDS:
        raise unknown_name("backend", backend, FILE_BACKENDS)
    require(model_path.is_file(), "the model file must exist", "an existing file", str(model_path))
    if backend == "tensorrt":
        require(model_path.suffix == ".engine", "the tensorrt backend runs engine files", "a .engine file",
                model_path.name, "build one with `attndeploy export NAME --engine`")
        from attndeploy.tensorrt.runner import TensorRTRunner

        return TensorRTRunner(model_path)
    require(model_path.suffix == ".onnx", f"the {backend} backend runs ONNX files", "a .onnx file", model_path.name)
    check_backend_installed(backend)
    return OnnxRuntimeRunner(model_path, PROVIDERS[backend], threads)

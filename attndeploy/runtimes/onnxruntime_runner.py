"""ONNX Runtime runner: CPU, CUDA or TensorRT execution provider."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from attndeploy.defaults import ORT_PROVIDERS
from attndeploy.errors import UsageError, first_line
from attndeploy.runtimes.base import Runner
from attndeploy.runtimes.feeds import IOSpec

_ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
               "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(bool)": "bool", "tensor(uint8)": "uint8",
               "tensor(int8)": "int8"}
ORT_LEVELS = {"all": "ORT_ENABLE_ALL", "extended": "ORT_ENABLE_EXTENDED", "basic": "ORT_ENABLE_BASIC",
              "none": "ORT_DISABLE_ALL"}


def _omp_threads() -> int:
    """$OMP_NUM_THREADS as a positive int, else 0 (onnxruntime: all cores)."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else 0


def ort_session(model: str | Path | bytes, threads: int, providers: Sequence[str], profile_prefix: str | None = None,
                level: str = "all") -> Any:
    """An onnxruntime session with `threads` intra-op threads (0: $OMP_NUM_THREADS where set, the budget torch's
    OpenMP pool keeps to in the same process, else all cores), 1 inter-op thread, optimization `level`.

    `level`: "all" (onnxruntime's default, with the NCHWc layout transform), "extended"
    (without it), "basic" or "none" (see `ORT_LEVELS`).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4  # errors reach the caller as exceptions; its log line would be noise
    options.intra_op_num_threads = threads or _omp_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, ORT_LEVELS[level])
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=list(providers))


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def check_backend_installed(backend: str) -> None:
    """`UsageError` unless the first provider of `backend` is in this onnxruntime build."""
    wanted = ORT_PROVIDERS[backend][0]
    have = available_providers()
    if wanted not in have:
        raise UsageError(f"{backend} needs onnxruntime's {wanted}", wanted, f"providers {have}",
                         "pip install 'attndeploy[gpu]' (onnxruntime-gpu) on a machine with an NVIDIA GPU")


def _spec(value: Any, is_input: bool) -> IOSpec:
    shape = tuple(d if isinstance(d, int) else -1 for d in value.shape)
    return IOSpec(value.name, is_input, _ORT_DTYPES.get(value.type, value.type), shape)


class OnnxRuntimeRunner(Runner):
    """Runs an ONNX model (a path or serialized bytes) in onnxruntime with `providers`."""

    name = "onnxruntime-cpu"

    def __init__(self, model: str | Path | bytes, providers: Sequence[str] = ORT_PROVIDERS["onnxruntime-cpu"],
                 threads: int = 0, level: str = "all") -> None:
        super().__init__()
        self.model, self.providers, self.threads, self.level = model, tuple(providers), threads, level
        self.name = next((k for k, v in ORT_PROVIDERS.items() if v == self.providers), "onnxruntime")
        self.session: Any = None

    def _activate(self) -> None:
        try:
            self.session = ort_session(self.model, self.threads, self.providers, level=self.level)
        except Exception as err:  # onnxruntime raises its own exception types for unreadable models
            label = "the given bytes" if isinstance(self.model, bytes) else str(self.model)
            raise UsageError("onnxruntime must be able to load the model", "a valid ONNX file",
                             f"{label}: {first_line(err)}") from err
        self.specs = [*(_spec(i, True) for i in self.session.get_inputs()),
                      *(_spec(o, False) for o in self.session.get_outputs())]

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self.session.run(None, feeds)
        return dict(zip(self.output_names, outputs, strict=True))

    def _close(self) -> None:
        self.session = None

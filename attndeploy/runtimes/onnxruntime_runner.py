"""ONNX Runtime runner: CPU, CUDA or TensorRT execution provider."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from attndeploy.errors import UsageError, first_line
from attndeploy.runtimes.feeds import IOSpec, validate_feeds

# onnxruntime falls back along each list; CPU is always last.
PROVIDERS = {
    "onnxruntime-cpu": ("CPUExecutionProvider",),
    "onnxruntime-cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "onnxruntime-trt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
}
_ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
               "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(bool)": "bool", "tensor(uint8)": "uint8"}


ORT_LEVELS = {"all": "ORT_ENABLE_ALL", "extended": "ORT_ENABLE_EXTENDED", "basic": "ORT_ENABLE_BASIC",
              "none": "ORT_DISABLE_ALL"}


def ort_session(model: str | Path | bytes, threads: int, providers: list[str], profile_prefix: str | None = None,
                level: str = "all") -> Any:
    """An onnxruntime session with `threads` intra-op threads, 1 inter-op thread, graph optimization `level`.

    `level`: "all" (onnxruntime's default, with the NCHWc layout transform), "extended"
    (without it), "basic" or "none" (see `ORT_LEVELS`).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, ORT_LEVELS[level])
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=providers)


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def check_backend_installed(backend: str) -> None:
    """`UsageError` unless the first provider of `backend` is in this onnxruntime build."""
    wanted = PROVIDERS[backend][0]
    have = available_providers()
    if wanted not in have:
        raise UsageError(f"{backend} needs onnxruntime's {wanted}", wanted, f"providers {have}",
                         "pip install 'attndeploy[gpu]' (onnxruntime-gpu) on a machine with an NVIDIA GPU")


class OnnxRuntimeRunner:
    """Runs an ONNX model in onnxruntime. `infer({name: array}) -> {name: array}`.

    Feeds are checked against the model's inputs (names, dtypes, ranks, static dims)
    with errors that name the input, the expected and the actual value.
    """

    def __init__(self, model: str | Path | bytes, providers: Sequence[str] = PROVIDERS["onnxruntime-cpu"],
                 threads: int = 0) -> None:
        self.model, self.providers, self.threads = model, tuple(providers), threads
        self.session: Any = None
        self.specs: list[IOSpec] = []

    def activate(self) -> OnnxRuntimeRunner:
        try:
            self.session = ort_session(self.model, self.threads, list(self.providers))
        except Exception as err:  # onnxruntime raises its own exception types for unreadable models
            label = "the given bytes" if isinstance(self.model, bytes) else str(self.model)
            raise UsageError("onnxruntime must be able to load the model", "a valid ONNX file",
                             f"{label}: {first_line(err)}") from err
        self.specs = [IOSpec(i.name, True, _ORT_DTYPES.get(i.type, i.type),
                             tuple(d if isinstance(d, int) else -1 for d in i.shape))
                      for i in self.session.get_inputs()]
        return self

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self._session().get_inputs()]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self._session().get_outputs()]

    def infer(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        arrays = validate_feeds(feeds, self.specs)
        outputs = self._session().run(None, arrays)
        return dict(zip(self.output_names, outputs, strict=True))

    def close(self) -> None:
        self.session = None

    def _session(self) -> Any:
        if self.session is None:
            raise RuntimeError("OnnxRuntimeRunner used before activate() (use it as a context manager)")
        return self.session

    def __enter__(self) -> OnnxRuntimeRunner:
        return self.activate()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

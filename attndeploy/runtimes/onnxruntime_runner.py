"""ONNX Runtime (CPU) runner."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import numpy as np


class OnnxRuntimeRunner:
    """Runs an ONNX model in onnxruntime. `infer({name: array}) -> {name: array}`."""

    def __init__(self, model: str | Path | bytes, providers: tuple[str, ...] = ("CPUExecutionProvider",)) -> None:
        self.model, self.providers = model, providers
        self.session = None

    def activate(self) -> OnnxRuntimeRunner:
        import onnxruntime as ort

        source = self.model if isinstance(self.model, bytes) else str(self.model)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(source, options, providers=list(self.providers))
        return self

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self._session().get_inputs()]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self._session().get_outputs()]

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self._session().run(None, feeds)
        return dict(zip(self.output_names, outputs, strict=True))

    def close(self) -> None:
        self.session = None

    def _session(self):  # noqa: ANN202  (onnxruntime has no type stubs)
        if self.session is None:
            raise RuntimeError("OnnxRuntimeRunner used before activate() (use it as a context manager)")
        return self.session

    def __enter__(self) -> OnnxRuntimeRunner:
        return self.activate()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

"""Run a TensorRT engine: `TensorRTRunner(path)` with `activate / infer / close`, usable as a context manager.

    >>> with TensorRTRunner("models/cbam/cbam.fp16.engine") as runner:
    ...     out = runner.infer({"input": x})          # x: (N, 64, H, W) float32, inside the profile
    >>> out["output"].shape                            # (N, 64, H, W) float32

Before deserialising, the sidecar (`<engine>.json`) must say the engine was built by this
TensorRT version for this GPU, and the file must match its recorded size and sha256
(truncated or corrupt files are refused as `UsageError`). Inference goes through torch
CUDA tensors as device buffers, one CUDA stream, `execute_async_v3`; output buffers are
reused while shapes repeat.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from attndeploy.errors import UsageError, require
from attndeploy.runtimes.feeds import IOSpec, validate_feeds
from attndeploy.shapes import format_shape
from attndeploy.tensorrt._api import (
    current_platform,
    dims,
    dtype_name,
    load_plugins,
    logged,
    make_logger,
)
from attndeploy.tensorrt.cache import (
    check_compatible,
    read_metadata,
    sidecar_path,
    verify_engine_bytes,
)
from attndeploy.tensorrt.profiles import InputProfile

if TYPE_CHECKING:
    import tensorrt as trt
    import torch


def _torch_dtype(name: str) -> torch.dtype:
    import torch

    table = {"float32": torch.float32, "float16": torch.float16, "int32": torch.int32, "int64": torch.int64,
             "int8": torch.int8, "uint8": torch.uint8, "bool": torch.bool, "bfloat16": torch.bfloat16}
    if name not in table:
        raise UsageError("the engine uses a tensor type the runner cannot allocate", ", ".join(table), name)
    return table[name]


class TensorRTRunner:
    """Runs a serialized TensorRT engine on CUDA device `device`. `infer({name: array}) -> {name: array}`."""

    def __init__(self, engine_path: str | Path, *, device: int = 0, plugins: Sequence[str | Path] | None = None,
                 strict_gpu_name: bool = True, require_metadata: bool = True) -> None:
        self.engine_path, self.device = Path(engine_path), device
        self.plugins, self.strict_gpu_name, self.require_metadata = plugins, strict_gpu_name, require_metadata
        self.specs: list[IOSpec] = []
        self._runtime: trt.Runtime | None = None
        self._engine: trt.ICudaEngine | None = None
        self._context: trt.IExecutionContext | None = None
        self._stream: torch.cuda.Stream | None = None
        self._outputs: dict[str, torch.Tensor] = {}
        self._logger: trt.ILogger | None = None

    def _read(self) -> tuple[bytes, list[str]]:
        platform = current_platform(self.device)  # TensorRT and a GPU, or UsageError
        path = self.engine_path
        require(path.is_file(), "the TensorRT engine must exist", "a .engine file", str(path))
        data = path.read_bytes()
        require(len(data) > 0, "the TensorRT engine must not be empty", "a serialized engine", f"0 bytes in {path}")
        if not self.require_metadata and not sidecar_path(path).is_file():
            return data, [str(p) for p in self.plugins or ()]
        metadata = read_metadata(path)
        check_compatible(path, metadata, platform, self.strict_gpu_name)
        verify_engine_bytes(path, data, metadata)
        recorded = [str(p["path"]) for p in metadata.settings.get("plugins", [])]
        return data, [str(p) for p in self.plugins] if self.plugins is not None else recorded

    def activate(self) -> TensorRTRunner:
        data, plugins = self._read()
        import tensorrt as trt
        import torch

        self._logger = make_logger(echo=False)
        load_plugins(self._logger, plugins)
        runtime = self._runtime = trt.Runtime(self._logger)  # kept alive as long as the engine
        with torch.cuda.device(self.device):
            engine = runtime.deserialize_cuda_engine(data)
            if engine is None:
                raise UsageError("the engine file must deserialize", "an engine built by this TensorRT for this GPU",
                                 f"{self.engine_path}: " + ("; ".join(logged(self._logger)) or "corrupt or foreign"),
                                 "rebuild it (attndeploy export --engine)")
            self._engine = engine
            self._context = engine.create_execution_context()
            self._stream = torch.cuda.Stream(device=self.device)
        self.specs = []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            profile = None
            if is_input:
                lo, best, hi = (dims(d) for d in engine.get_tensor_profile_shape(name, 0))
                profile = InputProfile(name, lo, best, hi)
            self.specs.append(IOSpec(name, is_input, dtype_name(engine.get_tensor_dtype(name)),
                                     dims(engine.get_tensor_shape(name)), profile))
        return self

    @property
    def input_names(self) -> list[str]:
        return [s.name for s in self.specs if s.is_input]

    @property
    def output_names(self) -> list[str]:
        return [s.name for s in self.specs if not s.is_input]

    def infer(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """`feeds`: {input name: numpy array or torch tensor}; returns {output name: numpy array}."""
        if self._context is None or self._stream is None:
            raise RuntimeError("TensorRTRunner used before activate() (use it as a context manager)")
        import torch

        context, stream = self._context, self._stream
        arrays = validate_feeds(feeds, self.specs)
        device = torch.device("cuda", self.device)
        keep_alive = []
        with torch.cuda.device(self.device), torch.cuda.stream(stream):
            for name, array in arrays.items():
                tensor = torch.from_numpy(array).to(device, non_blocking=False)
                keep_alive.append(tensor)
                require(context.set_input_shape(name, tuple(array.shape)), f"TensorRT must accept the shape of {name!r}",
                        "a shape inside the profile", format_shape(array.shape))
                context.set_tensor_address(name, tensor.data_ptr())
            for spec in self.specs:
                if spec.is_input:
                    continue
                shape = dims(context.get_tensor_shape(spec.name))
                if any(d < 0 for d in shape):
                    raise RuntimeError(f"output {spec.name!r} has a data-dependent shape {shape}: not supported")
                buffer = self._outputs.get(spec.name)
                if buffer is None or tuple(buffer.shape) != shape:
                    buffer = torch.empty(shape, dtype=_torch_dtype(spec.dtype), device=device)
                    self._outputs[spec.name] = buffer
                context.set_tensor_address(spec.name, buffer.data_ptr())
            if not context.execute_async_v3(stream.cuda_stream):
                raise RuntimeError("TensorRT execute_async_v3 failed: " + "; ".join(logged(self._logger)
                                                                                   if self._logger else []))
        stream.synchronize()
        return {name: self._outputs[name].cpu().numpy() for name in self.output_names}

    def close(self) -> None:
        self._context = self._engine = self._stream = self._runtime = None
        self._outputs = {}

    def __enter__(self) -> TensorRTRunner:
        return self.activate()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

"""Run a TensorRT engine: `TensorRTRunner(path)` on the `Runner` interface, executed by Polygraphy's `TrtRunner`.

    >>> with TensorRTRunner("models/cbam/cbam.fp16.engine") as runner:
    ...     out = runner.infer({"input": x})          # x: (N, 64, H, W) float32, inside the profile
    >>> out["output"].shape                            # (N, 64, H, W) float32

Ours: before anything is deserialised, the sidecar (`<engine>.json`) must say the engine
was built by this TensorRT version for this GPU, and the file must match its recorded
size and sha256 (truncated or corrupt files are a `UsageError`); the feeds are checked
once by `Runner.infer` against the engine's inputs, their dtypes and the optimization
profile's min / max. Polygraphy's: plugin loading (`LoadPlugins`), deserialisation
(`EngineFromBytes`, from the verified bytes) and execution (`TrtRunner`: device buffers,
shapes, `execute_async_v3`, data-dependent output shapes).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from attndeploy.errors import UsageError, first_line, require
from attndeploy.runtimes.base import Runner
from attndeploy.runtimes.feeds import InputProfile, IOSpec
from attndeploy.tensorrt._api import cuda_device, current_platform, dims, dtype_name, polygraphy_log, require_tensorrt
from attndeploy.tensorrt.cache import (
    check_compatible,
    read_metadata,
    sidecar_path,
    verify_engine_bytes,
)

if TYPE_CHECKING:
    import tensorrt as trt

REBUILD_HINT = "rebuild it (attndeploy export --engine)"


def engine_specs(engine: trt.ICudaEngine) -> list[IOSpec]:
    """Every I/O tensor of `engine` in engine order; inputs carry profile 0's min / opt / max."""
    import tensorrt as trt

    specs = []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        profile = None
        if is_input:
            lo, best, hi = (dims(d) for d in engine.get_tensor_profile_shape(name, 0))
            profile = InputProfile(name, lo, best, hi)
        specs.append(IOSpec(name, is_input, dtype_name(engine.get_tensor_dtype(name)),
                            dims(engine.get_tensor_shape(name)), profile))
    return specs


class TensorRTRunner(Runner):
    """Runs a serialized TensorRT engine on CUDA device `device`. `infer({name: array}) -> {name: array}`.

    `plugins`: plugin libraries to load (default: those recorded in the sidecar).
    `strict_gpu_name`: refuse an engine built on another GPU model of the same compute
    capability. `require_metadata=False` runs an engine without a sidecar (no checks).
    """

    name = "tensorrt"

    def __init__(self, engine_path: str | Path, *, device: int = 0, plugins: Sequence[str | Path] | None = None,
                 strict_gpu_name: bool = True, require_metadata: bool = True) -> None:
        super().__init__()
        self.engine_path, self.device = Path(engine_path), device
        self.plugins, self.strict_gpu_name, self.require_metadata = plugins, strict_gpu_name, require_metadata
        self._trt: Any = None  # polygraphy.backend.trt.TrtRunner while active

    def _read(self) -> tuple[bytes, list[str]]:
        """The engine's verified bytes and the plugin libraries to load."""
        require_tensorrt()
        path = self.engine_path
        require(path.is_file(), "the TensorRT engine must exist", "a .engine file", str(path))
        data = path.read_bytes()
        require(len(data) > 0, "the TensorRT engine must not be empty", "a serialized engine", f"0 bytes in {path}")
        if not self.require_metadata and not sidecar_path(path).is_file():
            return data, [str(p) for p in self.plugins or ()]  # e.g. built by trtexec on the device: no platform query
        platform = current_platform(self.device)  # TensorRT, Polygraphy and a GPU, or UsageError
        metadata = read_metadata(path)
        check_compatible(path, metadata, platform, self.strict_gpu_name)
        verify_engine_bytes(path, data, metadata)
        recorded = [str(p["path"]) for p in metadata.settings.get("plugins", [])]
        return data, [str(p) for p in self.plugins] if self.plugins is not None else recorded

    def _activate(self) -> None:
        data, plugins = self._read()
        from polygraphy.backend.trt import EngineFromBytes, LoadPlugins, TrtRunner
        from polygraphy.exception import PolygraphyException

        log = polygraphy_log()
        mark = log.count
        runner = TrtRunner(LoadPlugins(plugins=plugins, obj=EngineFromBytes(data)), name=f"tensorrt:{self.engine_path}")
        try:
            with cuda_device(self.device):
                runner.activate()
        except OSError as err:  # ctypes could not load a plugin library
            raise UsageError("a plugin library must load", "a TensorRT plugin .so built for this TensorRT",
                             f"{first_line(err)} (plugins {plugins})") from err
        except PolygraphyException as err:
            raise UsageError("the engine file must deserialize", "an engine built by this TensorRT for this GPU",
                             f"{self.engine_path}: " + ("; ".join(log.since(mark)) or first_line(err)),
                             REBUILD_HINT) from err
        try:
            self.specs = engine_specs(runner.engine)
        except BaseException:
            runner.deactivate()
            raise
        self._trt = runner

    @property
    def engine(self) -> trt.ICudaEngine:
        """The deserialized engine, while active (what TensorRT's engine inspector reads)."""
        if self._trt is None:
            raise RuntimeError("TensorRTRunner.engine read before activate() (use it as a context manager)")
        return self._trt.engine

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with cuda_device(self.device):
            outputs = self._trt.infer(feeds, check_inputs=False)  # checked once, by Runner.infer / bound
        return {name: np.array(outputs[name], copy=True) for name in self.output_names}  # TrtRunner reuses buffers

    def _close(self) -> None:
        if self._trt is not None:
            self._trt.deactivate()
        self._trt = None

"""TensorRT and Polygraphy's CUDA and runner seams faked, so the TensorRT path of `verify` runs here without a GPU.

`install(monkeypatch, layers)` puts a fake `tensorrt` module in `sys.modules` and fakes the
three things attndeploy asks Polygraphy for at run time: `polygraphy.cuda.wrapper()` (the
CUDA runtime: `cudaGetDevice` / `cudaSetDevice`), `EngineFromBytes` / `LoadPlugins` /
`TrtRunner` (deserialise and run). An "engine" here is an ONNX graph's bytes: the fake
engine describes its I/O as TensorRT does (`num_io_tensors`, `get_tensor_*`, profile 0's
min/opt/max from `FakeEngine.profile`) and runs it in onnxruntime; its engine inspector
returns `layers` as `get_engine_information(JSON)` does. Everything of attndeploy's between
those seams (TensorRTRunner, engine_specs, cuda_device, engine_precision, verify) is real.
"""

from __future__ import annotations

import json
import sys
import types
from typing import Any

import numpy as np
import onnxruntime as ort

FLOAT32, FLOAT16, INT8 = "trt.float32", "trt.float16", "trt.int8"


def fake_module() -> types.ModuleType:
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.3.0.26"
    trt.Builder = object
    trt.float32, trt.float16, trt.int8, trt.int32, trt.int64, trt.bool = FLOAT32, FLOAT16, INT8, "i32", "i64", "b"
    trt.TensorIOMode = types.SimpleNamespace(INPUT="input", OUTPUT="output")
    trt.LayerInformationFormat = types.SimpleNamespace(JSON="json", ONELINE="oneline")
    return trt


class FakeCuda:
    """`polygraphy.cuda.wrapper()`: the current device, and every `cudaSetDevice` call."""

    def __init__(self) -> None:
        self.device, self.set_calls = 0, []
        self.handle = types.SimpleNamespace(cudaGetDevice=self._get, cudaSetDevice=self._set)

    def _get(self, pointer: Any) -> int:
        pointer._obj.value = self.device
        return 0

    def _set(self, device: Any) -> int:
        self.device = int(getattr(device, "value", device))
        self.set_calls.append(self.device)
        return 0

    def check(self, status: int) -> None:
        assert status == 0


class FakeEngine:
    profile: tuple[tuple[int, ...], ...] = ()   # (min, opt, max) of the input; () takes the truth's shapes
    layers: list[Any] = []

    def __init__(self, data: bytes) -> None:
        self.session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        self.inputs = self.session.get_inputs()
        self.outputs = self.session.get_outputs()
        self.num_io_tensors = len(self.inputs) + len(self.outputs)

    def _io(self, name: str) -> Any:
        return next(t for t in [*self.inputs, *self.outputs] if t.name == name)

    def get_tensor_name(self, i: int) -> str:
        return [*self.inputs, *self.outputs][i].name

    def get_tensor_mode(self, name: str) -> str:
        return "input" if any(t.name == name for t in self.inputs) else "output"

    def get_tensor_profile_shape(self, name: str, index: int) -> tuple[tuple[int, ...], ...]:
        return self.profile

    def get_tensor_dtype(self, name: str) -> str:
        return FLOAT32

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return tuple(d if isinstance(d, int) else -1 for d in self._io(name).shape or ())

    def create_engine_inspector(self) -> Any:
        text = json.dumps({"Layers": self.layers, "Bindings": [t.name for t in [*self.inputs, *self.outputs]]})
        return types.SimpleNamespace(get_engine_information=lambda fmt: text if fmt == "json" else "")


class FakeTrtRunner:
    """Polygraphy's `TrtRunner(loader, name)`: activate / infer / deactivate."""

    def __init__(self, loader: Any, name: str = "") -> None:
        self.loader, self.engine = loader, None

    def activate(self) -> None:
        self.engine = self.loader()

    def infer(self, feeds: dict[str, np.ndarray], check_inputs: bool = True) -> dict[str, np.ndarray]:
        assert self.engine is not None
        names = [o.name for o in self.engine.outputs]
        return dict(zip(names, self.engine.session.run(names, feeds)))

    def deactivate(self) -> None:
        self.engine = None


def install(monkeypatch: Any, layers: list[Any], profile: tuple[tuple[int, ...], ...]) -> FakeCuda:
    """Fake TensorRT and Polygraphy's runtime seams (see the module docstring); returns the fake CUDA runtime."""
    import polygraphy.backend.trt as polygraphy_trt
    import polygraphy.cuda as polygraphy_cuda

    cuda = FakeCuda()
    monkeypatch.setitem(sys.modules, "tensorrt", fake_module())
    monkeypatch.setattr(polygraphy_cuda, "wrapper", lambda: cuda)
    monkeypatch.setattr(polygraphy_trt, "EngineFromBytes", lambda data: (lambda: FakeEngine(data)))
    monkeypatch.setattr(polygraphy_trt, "LoadPlugins", lambda plugins, obj: obj)
    monkeypatch.setattr(polygraphy_trt, "TrtRunner", FakeTrtRunner)
    monkeypatch.setattr(FakeEngine, "layers", layers)
    monkeypatch.setattr(FakeEngine, "profile", profile)
    return cuda


def layer(kind: str, datatype: str, inputs: str | None = None, split: bool = False) -> dict[str, Any]:
    """One layer of DETAILED engine information: TensorRT 8.6 / 10's "Format/Datatype", or 11's split fields."""
    def tensor(dt: str) -> dict[str, Any]:
        if split:
            return {"Name": "t", "Datatype": dt, "Format": "Row major linear"}
        return {"Name": "t", "Format/Datatype": f"Row major linear {dt}"}
    return {"Name": f"{kind}_layer", "LayerType": kind, "Inputs": [tensor(inputs or datatype)],
            "Outputs": [tensor(datatype)]}


__all__ = ["FakeCuda", "FakeEngine", "FakeTrtRunner", "install", "layer"]

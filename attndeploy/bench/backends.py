"""Bench backends: how each one is detected, prepared (files written) and opened (ready to call).

A backend's `prepare` runs outside the memory probe (exports, engine builds); its `open`
runs inside it (session creation counts towards the backend's memory). Every backend is
opened through its runner (`TorchRunner`, `OnnxRuntimeRunner`, `TensorRTRunner`), which
checks the bench input once (`Runner.bound`); the timed `call()` is then the bare run: the
forward pass for eager (CUDA synchronizes), `session.run` for onnxruntime CPU,
`run_with_iobinding` with input and output on the GPU for the CUDA and TensorRT EPs, and
for `tensorrt` the engine with the input copied in and the output out each call.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from attndeploy.bench.graphs import ModuleContext, NotApplicable
from attndeploy.defaults import ORT_PROVIDERS
from attndeploy.runtimes.base import Runner
from attndeploy.runtimes.onnxruntime_runner import (
    OnnxRuntimeRunner,
    available_providers,
)
from attndeploy.runtimes.torch_runner import TorchRunner
from attndeploy.tensorrt._api import tensorrt_unavailable
from attndeploy.tensorrt.runner import TensorRTRunner

if TYPE_CHECKING:
    import torch


@dataclass
class Opened:
    """A backend ready to time: `call()` runs once; `close()` frees it."""

    call: Callable[[], object]
    close: Callable[[], None] = lambda: None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Backend:
    """`unavailable()`: None or why not here; `eager`: PyTorch on the CPU (torch.profiler memory applies);
    `onnx`: runs an ONNX graph."""

    name: str
    description: str
    unavailable: Callable[[], str | None]
    open: Callable[[ModuleContext, torch.Tensor], Opened]
    prepare: Callable[[ModuleContext, torch.Tensor], None] = lambda ctx, x: None
    eager: bool = False
    onnx: bool = False


class _ForwardOnly(TorchRunner):
    """TorchRunner whose bound call is the bare forward pass on an input staged on the device once."""

    def _bind(self, feeds: dict[str, np.ndarray]) -> Callable[[], object]:
        import torch

        model, x = self.model, torch.from_numpy(feeds[self.input_name]).to(self.device, self.dtype)
        sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)

        @torch.inference_mode()
        def call() -> object:
            out = model(x)
            sync()
            return out
        return call


class _SessionOnly(OnnxRuntimeRunner):
    """OnnxRuntimeRunner whose bound call is `session.run` (CPU) or `run_with_iobinding` with I/O on the GPU."""

    def _bind(self, feeds: dict[str, np.ndarray]) -> Callable[[], object]:
        session = self.session
        if self.providers[0] == "CPUExecutionProvider":
            return lambda: session.run(None, feeds)
        import onnxruntime as ort

        binding = session.io_binding()
        self.staged = {name: ort.OrtValue.ortvalue_from_numpy(array, "cuda", 0) for name, array in feeds.items()}
        for name, value in self.staged.items():
            binding.bind_ortvalue_input(name, value)
        for name in self.output_names:
            binding.bind_output(name, "cuda")
        return lambda: session.run_with_iobinding(binding)


def _opened(runner: Runner, x: torch.Tensor, info: dict[str, Any]) -> Opened:
    """Activate `runner`, check the bench input once, and hand back the bare call."""
    runner.activate()
    try:
        call = runner.bound({runner.input_names[0]: x.numpy()})
    except BaseException:
        runner.close()
        raise
    return Opened(call, runner.close, info)


def _always() -> str | None:
    return None


def _needs_provider(provider: str) -> Callable[[], str | None]:
    def check() -> str | None:
        have = available_providers()
        return None if provider in have else f"{provider} is not among onnxruntime's providers {have}"
    return check


def _needs_cuda() -> str | None:
    import torch

    return None if torch.cuda.is_available() else "torch.cuda.is_available() is False (no CUDA GPU or driver)"


def _needs_tensorrt() -> str | None:
    return tensorrt_unavailable() or _needs_cuda()


def _eager(which: str, device: str) -> Callable[[ModuleContext, torch.Tensor], Opened]:
    def open_(ctx: ModuleContext, x: torch.Tensor) -> Opened:
        source = ctx.reference if which == "reference" else ctx.deploy
        model = source if device == "cpu" else copy.deepcopy(source)  # the context's modules stay on the CPU
        return _opened(_ForwardOnly(model, device), x, {"module": type(model).__name__, "device": device})
    return open_


def _graph(ctx: ModuleContext, graph: str, x: torch.Tensor) -> Path:
    if graph == "deploy":
        return ctx.deploy_onnx()
    if graph == "reference":
        return ctx.reference_onnx(tuple(x.shape))
    return ctx.reduced_onnx(graph)   # "fp16", "int8", "int8-ort-cpu"


def _ort_open(graph: str, backend: str) -> Callable[[ModuleContext, torch.Tensor], Opened]:
    def open_(ctx: ModuleContext, x: torch.Tensor) -> Opened:
        path = _graph(ctx, graph, x)
        runner = _SessionOnly(path, ORT_PROVIDERS[backend], ctx.threads, ctx.ort_level)
        opened = _opened(runner, x, {"onnx": str(path), **ctx.graph_info(path)})
        opened.info["providers"] = runner.session.get_providers()
        return opened
    return open_


def _ort_prepare(graph: str) -> Callable[[ModuleContext, torch.Tensor], None]:
    def prepare(ctx: ModuleContext, x: torch.Tensor) -> None:
        _graph(ctx, graph, x)
    return prepare


def _trt_prepare(ctx: ModuleContext, x: torch.Tensor) -> None:
    ctx.engine(tuple(x.shape))


def _trt_open(ctx: ModuleContext, x: torch.Tensor) -> Opened:
    engine = ctx.engine(tuple(x.shape))
    return _opened(TensorRTRunner(engine), x, {"engine": str(engine), "precision": "fp32"})


BACKENDS: dict[str, Backend] = {b.name: b for b in (
    Backend("eager-reference", "PyTorch eager, the reference module, CPU", _always, _eager("reference", "cpu"),
            eager=True),
    Backend("eager-deploy", "PyTorch eager, the deploy twin, CPU", _always, _eager("deploy", "cpu"), eager=True),
    Backend("onnxruntime", "onnxruntime CPU on the exported deploy graph (attndeploy.export, dynamic)", _always,
            _ort_open("deploy", "onnxruntime-cpu"), _ort_prepare("deploy"), onnx=True),
    Backend("onnxruntime-reference", "onnxruntime CPU on the reference exported as-is (TorchScript, opset 17, "
            "static, no twin swap, no onnxsim)", _always, _ort_open("reference", "onnxruntime-cpu"),
            _ort_prepare("reference"), onnx=True),
    Backend("onnxruntime-fp16", "onnxruntime CPU on the pipeline's mixed fp16 graph (keep-fp32 plan + search)",
            _always, _ort_open("fp16", "onnxruntime-cpu"), _ort_prepare("fp16"), onnx=True),
    Backend("onnxruntime-int8", "onnxruntime CPU on the pipeline's int8 Q/DQ graph, TensorRT flavour (symmetric, "
            "weighted ops)", _always, _ort_open("int8", "onnxruntime-cpu"), _ort_prepare("int8"), onnx=True),
    Backend("onnxruntime-int8-ort-cpu", "onnxruntime CPU on the pipeline's int8 Q/DQ graph, ort-cpu flavour "
            "(uint8 activations, every op)", _always, _ort_open("int8-ort-cpu", "onnxruntime-cpu"),
            _ort_prepare("int8-ort-cpu"), onnx=True),
    Backend("eager-reference-cuda", "PyTorch eager, the reference module, CUDA", _needs_cuda,
            _eager("reference", "cuda")),
    Backend("eager-deploy-cuda", "PyTorch eager, the deploy twin, CUDA", _needs_cuda, _eager("deploy", "cuda")),
    Backend("onnxruntime-cuda", "onnxruntime CUDA EP on the deploy graph (I/O bound on the GPU)",
            _needs_provider("CUDAExecutionProvider"), _ort_open("deploy", "onnxruntime-cuda"), _ort_prepare("deploy"),
            onnx=True),
    Backend("onnxruntime-trt", "onnxruntime TensorRT EP on the deploy graph (I/O bound on the GPU)",
            _needs_provider("TensorrtExecutionProvider"), _ort_open("deploy", "onnxruntime-trt"),
            _ort_prepare("deploy"), onnx=True),
    Backend("tensorrt", "TensorRT fp32 engine of the deploy graph (static profile at the bench shape; "
            "host<->device copies included)", _needs_tensorrt, _trt_open, _trt_prepare),
)}
DEFAULT_BACKENDS = tuple(BACKENDS)


def unavailable_reason(name: str) -> str | None:
    """Why backend `name` cannot run here (None when it can); a crashing probe is a reason too."""
    try:
        return BACKENDS[name].unavailable()
    except Exception as err:  # a broken install of an optional runtime must not crash the bench
        return f"probe failed: {type(err).__name__}: {err}"


__all__ = ["BACKENDS", "DEFAULT_BACKENDS", "Backend", "NotApplicable", "Opened",
           "unavailable_reason"]

"""Bench backends: how each one is detected, prepared (files written) and opened (ready to call).

A backend's `prepare` runs outside the memory probe (exports, engine builds); its `open`
runs inside it (session creation counts towards the backend's memory). Every `call()`
runs the module once on the bench input and returns once the result is on hand (CUDA
backends synchronize; ORT CUDA/TensorRT-EP keep input and output on the GPU through
I/O binding; the `tensorrt` backend copies the input in and the output out each call).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from attndeploy.bench.graphs import ModuleContext, NotApplicable
from attndeploy.runtimes.onnxruntime_runner import ort_session

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


def _always() -> str | None:
    return None


def _ort_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def _needs_provider(provider: str) -> Callable[[], str | None]:
    def check() -> str | None:
        have = _ort_providers()
        return None if provider in have else f"{provider} is not among onnxruntime's providers {have}"
    return check


def _needs_cuda() -> str | None:
    import torch

    return None if torch.cuda.is_available() else "torch.cuda.is_available() is False (no CUDA GPU or driver)"


def _needs_tensorrt() -> str | None:
    if importlib.util.find_spec("tensorrt") is None:
        return "the tensorrt package is not installed (pip install 'attndeploy[trt]')"
    return _needs_cuda()


def _eager(which: str, device: str) -> Callable[[ModuleContext, torch.Tensor], Opened]:
    def open_(ctx: ModuleContext, x: torch.Tensor) -> Opened:
        import copy

        import torch

        source = ctx.reference if which == "reference" else ctx.deploy
        model = source if device == "cpu" else copy.deepcopy(source).to(device)
        xd = x if device == "cpu" else x.to(device)
        sync = torch.cuda.synchronize if device != "cpu" else (lambda: None)

        @torch.inference_mode()
        def call() -> object:
            out = model(xd)
            sync()
            return out
        return Opened(call, info={"module": type(model).__name__, "device": device})
    return open_


def _ort_open(graph: str, providers: list[str]) -> Callable[[ModuleContext, torch.Tensor], Opened]:
    def open_(ctx: ModuleContext, x: torch.Tensor) -> Opened:
        path = ctx.deploy_onnx() if graph == "deploy" else ctx.reference_onnx(tuple(x.shape))
        session = ort_session(path, ctx.threads, providers, level=ctx.ort_level)
        feed_name = session.get_inputs()[0].name
        info = {"onnx": str(path), "providers": session.get_providers(), **ctx.graph_info(path)}
        if providers[0] == "CPUExecutionProvider":
            feeds = {feed_name: x.numpy()}
            return Opened(lambda: session.run(None, feeds), info=info)
        import onnxruntime as ort

        value = ort.OrtValue.ortvalue_from_numpy(x.numpy(), "cuda", 0)
        binding = session.io_binding()
        binding.bind_ortvalue_input(feed_name, value)
        for out in session.get_outputs():
            binding.bind_output(out.name, "cuda")
        return Opened(lambda: session.run_with_iobinding(binding), info=info)
    return open_


def _ort_prepare(graph: str) -> Callable[[ModuleContext, torch.Tensor], None]:
    def prepare(ctx: ModuleContext, x: torch.Tensor) -> None:
        if graph == "deploy":
            ctx.deploy_onnx()
        else:
            ctx.reference_onnx(tuple(x.shape))
    return prepare


def _trt_prepare(ctx: ModuleContext, x: torch.Tensor) -> None:
    ctx.engine(tuple(x.shape))


def _trt_open(ctx: ModuleContext, x: torch.Tensor) -> Opened:
    from attndeploy.tensorrt.runner import TensorRTRunner

    engine = ctx.engine(tuple(x.shape))
    runner = TensorRTRunner(engine).activate()
    feeds = {runner.input_names[0]: x.numpy()}
    return Opened(lambda: runner.infer(feeds), runner.close, {"engine": str(engine), "precision": "fp32"})


_CPU, _CUDA, _TRT_EP = ["CPUExecutionProvider"], ["CUDAExecutionProvider", "CPUExecutionProvider"], \
    ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]

BACKENDS: dict[str, Backend] = {b.name: b for b in (
    Backend("eager-reference", "PyTorch eager, the reference module, CPU", _always, _eager("reference", "cpu"),
            eager=True),
    Backend("eager-deploy", "PyTorch eager, the deploy twin, CPU", _always, _eager("deploy", "cpu"), eager=True),
    Backend("onnxruntime", "onnxruntime CPU on the exported deploy graph (attndeploy.export, dynamic)", _always,
            _ort_open("deploy", _CPU), _ort_prepare("deploy"), onnx=True),
    Backend("onnxruntime-reference", "onnxruntime CPU on the reference exported as-is (TorchScript, opset 17, "
            "static, no twin swap, no onnxsim)", _always, _ort_open("reference", _CPU), _ort_prepare("reference"),
            onnx=True),
    Backend("eager-reference-cuda", "PyTorch eager, the reference module, CUDA", _needs_cuda,
            _eager("reference", "cuda")),
    Backend("eager-deploy-cuda", "PyTorch eager, the deploy twin, CUDA", _needs_cuda, _eager("deploy", "cuda")),
    Backend("onnxruntime-cuda", "onnxruntime CUDA EP on the deploy graph (I/O bound on the GPU)",
            _needs_provider("CUDAExecutionProvider"), _ort_open("deploy", _CUDA), _ort_prepare("deploy"), onnx=True),
    Backend("onnxruntime-trt", "onnxruntime TensorRT EP on the deploy graph (I/O bound on the GPU)",
            _needs_provider("TensorrtExecutionProvider"), _ort_open("deploy", _TRT_EP), _ort_prepare("deploy"),
            onnx=True),
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

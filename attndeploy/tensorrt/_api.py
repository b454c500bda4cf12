"""Shared TensorRT plumbing: the lazy import, the platform, a capturing logger, plugin libraries.

`tensorrt` is imported inside functions only, so `import attndeploy` never needs it.
Callers do `require_tensorrt()` and then `import tensorrt as trt` themselves, which keeps
mypy checking their calls against `tensorrt-stubs`.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from attndeploy.errors import UsageError
from attndeploy.tensorrt.cache import Platform

if TYPE_CHECKING:
    import tensorrt as trt

INSTALL_HINT = ("pip install tensorrt (NVIDIA's wheels, needs an NVIDIA GPU and driver), "
                "or pip install 'attndeploy[trt]'")


def require_tensorrt() -> str:
    """The installed TensorRT version; `UsageError` when the package is missing."""
    try:
        import tensorrt as trt
    except ImportError as err:
        raise UsageError("TensorRT is not installed", "the tensorrt Python package", f"ImportError: {err}",
                         INSTALL_HINT) from err
    if not hasattr(trt, "Builder"):  # e.g. only tensorrt-stubs: `tensorrt` imports as an empty namespace package
        where = ", ".join(getattr(trt, "__path__", [])) or "?"
        raise UsageError("TensorRT is not installed", "the tensorrt Python package",
                         f"a 'tensorrt' without the library at {where} (type stubs only?)", INSTALL_HINT)
    return str(trt.__version__)


def major_version(version: str) -> int:
    """`"10.13.0.35"` -> 10."""
    head = version.split(".")[0]
    if not head.isdigit():
        raise UsageError("the TensorRT version must start with its major number", "e.g. 10.13.0.35", repr(version))
    return int(head)


def current_platform(device: int = 0) -> Platform:
    """TensorRT version, GPU name and compute capability of CUDA device `device`."""
    version = require_tensorrt()
    import torch

    if not torch.cuda.is_available():
        raise UsageError("TensorRT needs a CUDA GPU", "a visible NVIDIA GPU", "torch.cuda.is_available() is False",
                         "run on a machine with an NVIDIA GPU and driver")
    major, minor = torch.cuda.get_device_capability(device)
    return Platform(version, torch.cuda.get_device_name(device), f"{major}.{minor}")


def make_logger(echo: bool = True) -> trt.ILogger:
    """A TensorRT logger that keeps every warning and error (`.messages`) and echoes them to stderr."""
    import tensorrt as trt

    class CapturingLogger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.messages: list[str] = []

        def log(self, severity: trt.ILogger.Severity, msg: str) -> None:
            if int(severity) <= int(trt.ILogger.Severity.WARNING):
                self.messages.append(f"{severity.name}: {msg}")
                if echo:
                    print(f"[TensorRT] {severity.name}: {msg}", file=sys.stderr, flush=True)

    return CapturingLogger()


def logged(logger: trt.ILogger) -> list[str]:
    return list(getattr(logger, "messages", []))


def load_plugins(logger: trt.ILogger, libraries: Sequence[str | Path] = ()) -> None:
    """Register TensorRT's bundled plugins (ModulatedDeformConv2d, ...) and load extra plugin libraries."""
    import tensorrt as trt

    trt.init_libnvinfer_plugins(logger, "")
    for lib in libraries:
        try:
            ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)  # the library registers its creators on load
        except OSError as err:
            raise UsageError("a plugin library must load", "a TensorRT plugin .so built for this TensorRT",
                             f"{lib}: {err}") from err


def dtype_name(dtype: trt.DataType) -> str:
    """`trt.float32` -> `"float32"` (numpy's names)."""
    import tensorrt as trt

    for name in ("float32", "float16", "int32", "int64", "int8", "uint8", "bool", "bfloat16"):
        if getattr(trt, name, None) == dtype:  # 8.6 has no int64 / bfloat16
            return name
    return str(dtype)


def dims(value: trt.Dims) -> tuple[int, ...]:
    """A TensorRT `Dims` as a tuple (-1 where dynamic)."""
    return tuple(int(value[i]) for i in range(len(value)))

"""Shared TensorRT plumbing: whether TensorRT is usable here, the platform, Polygraphy's log, typed helpers.

`tensorrt` and `polygraphy` are imported inside functions only, so `import attndeploy`
never needs them. `tensorrt_unavailable()` is the one availability check (the bench,
selftest and the CLI ask it); `require_tensorrt()` turns its answer into a `UsageError`.
Callers then `import tensorrt as trt` themselves, which keeps mypy checking their calls
against `tensorrt-stubs`.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import logging
import sys
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING

from attndeploy.errors import UsageError
from attndeploy.tensorrt.cache import Platform

if TYPE_CHECKING:
    import tensorrt as trt

INSTALL_HINT = ("pip install tensorrt (NVIDIA's wheels, needs an NVIDIA GPU and driver), "
                "or pip install 'attndeploy[trt]'")
POLYGRAPHY_HINT = "pip install polygraphy, or pip install 'attndeploy[trt]'"


def _missing() -> tuple[str, str, str] | None:
    """(rule, actual, hint) when TensorRT or Polygraphy cannot be used here, else None."""
    try:
        import tensorrt as trt
    except ImportError as err:
        return "TensorRT is not installed", f"the tensorrt package is not installed (ImportError: {err})", INSTALL_HINT
    if not hasattr(trt, "Builder"):  # tensorrt-stubs alone: `tensorrt` imports as an empty namespace package
        where = ", ".join(getattr(trt, "__path__", [])) or "?"
        return ("TensorRT is not installed", f"only the type stubs of tensorrt are installed (a 'tensorrt' without "
                f"the library at {where})", INSTALL_HINT)
    if importlib.util.find_spec("polygraphy") is None:
        return "Polygraphy is not installed", "no polygraphy package (it builds and runs the engines)", POLYGRAPHY_HINT
    return None


def tensorrt_unavailable() -> str | None:
    """Why TensorRT engines cannot be built or run here (TensorRT, or Polygraphy, missing), or None."""
    missing = _missing()
    return None if missing is None else f"{missing[1]} ({missing[2]})"


def require_tensorrt() -> str:
    """The installed TensorRT version; `UsageError` when TensorRT (or Polygraphy) is missing."""
    missing = _missing()
    if missing is not None:
        rule, actual, hint = missing
        raise UsageError(rule, "the tensorrt and polygraphy Python packages", actual, hint)
    import tensorrt as trt

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


@contextlib.contextmanager
def cuda_device(device: int) -> Iterator[None]:
    """CUDA device `device` current in this thread during the block, restored after (no torch: the CUDA runtime's
    `cudaGetDevice` / `cudaSetDevice` through Polygraphy's wrapper, the library its `TrtRunner` uses)."""
    from polygraphy import cuda

    runtime = cuda.wrapper()
    current = ctypes.c_int(0)
    runtime.check(runtime.handle.cudaGetDevice(ctypes.byref(current)))
    switch = current.value != device
    if switch:
        runtime.check(runtime.handle.cudaSetDevice(ctypes.c_int(device)))
    try:
        yield
    finally:
        if switch:
            runtime.check(runtime.handle.cudaSetDevice(current))


class PolygraphyLog(logging.Handler):
    """Polygraphy's messages (TensorRT's come through it) at WARNING and above: kept, and echoed to stderr."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: deque[str] = deque(maxlen=500)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.messages.append(message)
        self.count += 1
        print(f"[polygraphy] {message}", file=sys.stderr, flush=True)

    def since(self, mark: int) -> list[str]:
        """The messages logged after `count` was `mark` (as many as are still kept)."""
        new = min(self.count - mark, len(self.messages))
        return list(self.messages)[len(self.messages) - new:] if new > 0 else []


_LOG: PolygraphyLog | None = None


def polygraphy_log() -> PolygraphyLog:
    """Route Polygraphy's logger to stderr, WARNING and above, once per process; returns the collector.

    Polygraphy prints to stdout by default, which `--json` owns. Its global logger is set
    to Python's logging system (logger "Polygraphy") at WARNING the first time attndeploy
    builds or runs an engine.
    """
    global _LOG
    if _LOG is None:
        from polygraphy.logger import G_LOGGER

        _LOG = PolygraphyLog()
        python_logger = logging.getLogger("Polygraphy")
        python_logger.addHandler(_LOG)
        python_logger.setLevel(logging.WARNING)
        python_logger.propagate = False
        G_LOGGER.use_python_logging_system = True
        G_LOGGER.module_severity = G_LOGGER.WARNING
        # without the optional `colored` package, colors on make Polygraphy print a notice to stdout; with it, ANSI
        # codes would precede the "[W]" / "[E]" the build's filters look for
        G_LOGGER.colors = False
    return _LOG


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

"""`plan_bench`: check every bench argument up front, so bad input fails before any measurement."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from attndeploy.bench.backends import BACKENDS, DEFAULT_BACKENDS, unavailable_reason
from attndeploy.defaults import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET
from attndeploy.errors import require, unknown_name
from attndeploy.limits import check_bytes, check_seed, check_tensor_bytes
from attndeploy.registry import get_spec, list_modules
from attndeploy.runtimes.onnxruntime_runner import ORT_LEVELS
from attndeploy.settings_checks import integer
from attndeploy.shapes import Shape, format_shape

DEFAULT_BATCHES = (1, 8)


def all_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass
class BenchPlan:
    """What `run_bench` measures: modules x shapes x backends, and how.

    `skipped`: requested backends that cannot run here, with the reason. Times are
    `iters` interleaved rounds after `warmup` calls per backend, cut short after
    `max_seconds` of rounds per module and shape (at least 5 rounds).
    """

    modules: list[str]
    shapes: dict[str, list[Shape]]
    backends: list[str]
    skipped: dict[str, str] = field(default_factory=dict)
    threads: int = 1
    warmup: int = 3
    iters: int = 30
    max_seconds: float = 10.0
    opset: int = 17
    seed: int = 0
    copy_mib: int = 128
    ort_profile: bool = False
    ort_level: str = "all"

    @property
    def runnable(self) -> list[str]:
        return [b for b in self.backends if b not in self.skipped]

    def settings(self) -> dict[str, object]:
        return {"threads": self.threads, "warmup": self.warmup, "iters": self.iters, "max_seconds": self.max_seconds,
                "opset": self.opset, "seed": self.seed, "copy_mib": self.copy_mib, "ort_profile": self.ort_profile,
                "ort_level": self.ort_level,
                "backends": self.backends}


def _module_shapes(name: str, input_shape: Shape | None, batches: Sequence[int] | None) -> list[Shape]:
    spec = get_spec(name)
    channels = int(spec.defaults.get("channels", spec.example_shape[1]))
    base = tuple(input_shape) if input_shape is not None else (spec.example_shape[0], channels,
                                                               *spec.example_shape[2:])
    if batches is None:
        batches = [base[0]] if input_shape is not None else list(DEFAULT_BATCHES)
    shapes: list[Shape] = []
    for n in batches:
        shape = (n, *base[1:])
        spec.check_input_shape(shape, channels)  # UsageError: rank, channels, H/W rules
        check_tensor_bytes(shape, f"{name}'s input {format_shape(shape)}")
        if shape not in shapes:
            shapes.append(shape)
    return shapes


@dataclass(frozen=True)
class BenchOptions:
    """What `plan_bench` takes besides the names (the `attndeploy bench` flags)."""

    input_shape: Shape | None = None
    batches: Sequence[int] | None = None
    backends: Sequence[str] = ()
    threads: int | None = None
    warmup: int = 3
    iters: int = 30
    max_seconds: float = 10.0
    opset: int = DEFAULT_OPSET
    seed: int = 0
    copy_mib: int = 128
    ort_profile: bool = False
    ort_level: str = "all"


def plan_bench(names: Sequence[str] = (), **options: Any) -> BenchPlan:
    """Validate the arguments (`BenchOptions` fields) into a `BenchPlan`; any bad one raises `UsageError` naming it.

    `names`: registry names (default: all). `input_shape`: (N, C, H, W) for every module
    (default: each module's example shape); `batches` replaces N (default 1 and 8
    without `input_shape`, its N with it). `backends`: names from `BACKENDS` (default:
    all; those that cannot run here are skipped with the reason).
    """
    fields = [f.name for f in dataclasses.fields(BenchOptions)]
    for key in options:
        if key not in fields:
            raise unknown_name("bench option", key, fields)
    o = BenchOptions(**options)
    input_shape, batches, backends, threads, opset = o.input_shape, o.batches, o.backends, o.threads, o.opset
    warmup, iters, max_seconds, seed, copy_mib, ort_level = o.warmup, o.iters, o.max_seconds, o.seed, o.copy_mib, \
        o.ort_level

    modules = list(dict.fromkeys(names)) or list_modules()
    for name in modules:
        get_spec(name)  # unknown: lists the valid ones, suggests the closest
    chosen = list(dict.fromkeys(backends)) or list(DEFAULT_BACKENDS)
    for backend in chosen:
        if backend not in BACKENDS:
            raise unknown_name("backend", backend, BACKENDS)
    if batches is not None:
        require(len(batches) > 0 and all(isinstance(n, int) and n >= 1 for n in batches),
                "--batch must be positive integers", "e.g. 1,8", list(batches))
    require(input_shape is None or len(input_shape) == 4, "--input must be 4-D (N, C, H, W)", "e.g. 1x64x56x56",
            input_shape)
    threads = all_cores() if threads is None else threads
    require(isinstance(threads, int) and threads >= 1, "--threads must be a positive integer", ">= 1", threads)
    require(warmup >= 0, "--warmup must not be negative", ">= 0", warmup)
    require(iters >= 1, "--iters must be positive", ">= 1", iters)
    require(max_seconds > 0, "--max-seconds must be positive", "> 0", max_seconds)
    require(copy_mib >= 1, "--copy-mib must be positive", ">= 1", copy_mib)
    check_bytes(2 * copy_mib << 20, f"--copy-mib {copy_mib} (a source and a destination of {copy_mib} MiB)")
    check_seed(seed, "--seed")
    if ort_level not in ORT_LEVELS:
        raise unknown_name("onnxruntime optimization level (--ort-level)", ort_level, ORT_LEVELS)
    opset = integer(opset, "--opset", MIN_OPSET, MAX_OPSET)  # the range attndeploy exports and tests
    for name in modules:
        spec = get_spec(name)
        require(opset >= spec.min_opset, f"{name} needs ops that exist from opset {spec.min_opset}",
                f"--opset >= {spec.min_opset}", opset)
    shapes = {name: _module_shapes(name, input_shape, batches) for name in modules}
    skipped = {b: reason for b in chosen if (reason := unavailable_reason(b)) is not None}
    return BenchPlan(modules, shapes, chosen, skipped, threads, warmup, iters, max_seconds, opset, seed, copy_mib,
                     o.ort_profile, ort_level)

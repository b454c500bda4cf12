"""Build (or reuse) a TensorRT engine from an ONNX model: engine cache, one profile, Polygraphy's build.

    >>> res = build_engine("models/cbam/cbam.onnx", "models/cbam/cbam.fp16.engine", BuildOptions(precision="fp16"),
    ...                    profile=derive_profile("models/cbam/cbam.onnx", (1, 64, 56, 56)))
    >>> res.engine_path, res.cached, res.fp32_layers[:2]

The cache key (`cache.cache_key`) covers the ONNX bytes, the TensorRT version, the GPU and
every setting that changes the engine; a hit skips the build. A miss builds through
`plan.plan_build` (Polygraphy's loaders, our parse and precision policy) and writes the
engine with its sidecar atomically. TF32 is always off, so an fp32 engine matches eager
fp32 within atol 1e-4 / rtol 1e-3.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attndeploy.errors import first_line
from attndeploy.tensorrt._api import current_platform, major_version, polygraphy_log
from attndeploy.tensorrt.cache import (
    BuildSettings,
    Platform,
    cache_key,
    lookup,
    new_metadata,
    plugin_fingerprints,
    sidecar_path,
    write_entry,
)
from attndeploy.tensorrt.network import EngineBuildFailed
from attndeploy.tensorrt.options import BuildOptions, strongly_typed
from attndeploy.tensorrt.plan import BuildPlan, plan_build
from attndeploy.tensorrt.profiles import Profile, derive_profile, read_onnx

Log = Callable[[str], None]


@dataclass
class BuildResult:
    """`engine_path` with its sidecar `metadata_path`; `cached` when an up-to-date engine was reused."""

    engine_path: Path
    metadata_path: Path
    cached: bool
    key: str
    reason: str
    platform: Platform
    settings: BuildSettings
    fp32_layers: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"engine": str(self.engine_path), "metadata": str(self.metadata_path), "cached": self.cached,
                "key": self.key, "reason": self.reason, "platform": vars(self.platform),
                "settings": self.settings.to_dict(), "fp32_layers": self.fp32_layers, "warnings": self.warnings,
                "seconds": round(self.seconds, 3)}


def build_settings(options: BuildOptions, major: int, profile: Profile) -> BuildSettings:
    """What the cache key covers: the options as TensorRT `major` applies them, and the profile."""
    policy_fp16 = options.precision == "fp16" and not options.precision_in_graph
    return BuildSettings(precision=options.precision, precision_in_graph=options.precision_in_graph, tf32=False,
                         workspace_mb=options.workspace_mb, profile=profile.to_dict(),
                         plugins=plugin_fingerprints(options.plugins), strongly_typed=strongly_typed(options, major),
                         precision_constraints=options.precision_constraints,
                         keep_fp32_ops=options.keep_fp32_ops if policy_fp16 else ())


def run_plan(plan: BuildPlan, label: str) -> tuple[bytes, list[str]]:
    """Build: (engine bytes, TensorRT's warnings); `EngineBuildFailed` with TensorRT's errors when it fails."""
    from polygraphy.exception import PolygraphyException

    log = polygraphy_log()
    mark = log.count
    try:
        serialized = plan.engine()
    except PolygraphyException as err:
        errors = [m for m in log.since(mark) if m.startswith(("[E]", "[!]"))] or [first_line(err)]
        raise EngineBuildFailed(f"TensorRT could not build {label}: " + " | ".join(errors)) from err
    except OSError as err:  # ctypes could not load a plugin library
        raise EngineBuildFailed(f"TensorRT could not build {label}: a plugin library did not load: "
                                f"{first_line(err)}") from err
    warnings = [m for m in log.since(mark) if m.startswith("[W]")]
    return bytes(memoryview(serialized)), warnings


def build_engine(onnx_path: str | Path, out_path: str | Path, options: BuildOptions = BuildOptions(), *,
                 profile: Profile | None = None, rebuild: bool = False, log: Log | None = None) -> BuildResult:
    """Build (or reuse) the engine for `onnx_path` at `out_path` (+ `<out_path>.json`).

    `profile`: one optimization profile (`derive_profile`); a model with static inputs
    needs none. `rebuild` builds even on a cache hit. Raises `UsageError` (no TensorRT or
    Polygraphy, no GPU, bad arguments) and `EngineBuildFailed` (every parser error with its
    node and PyTorch module scope, or the builder's errors).
    """
    say = log or (lambda _msg: None)
    start = time.perf_counter()
    platform = current_platform()
    major = major_version(platform.tensorrt_version)
    onnx_path, out_path = Path(onnx_path), Path(out_path)
    onnx_bytes, model = read_onnx(onnx_path)
    profile = profile or derive_profile(model)
    settings = build_settings(options, major, profile)
    key = cache_key(onnx_bytes, platform, settings)
    found = lookup(out_path, key, platform)
    if found.hit and not rebuild:
        say(f"engine cache hit: {out_path}")
        return BuildResult(out_path, sidecar_path(out_path), True, key, found.reason, platform, settings,
                           found.metadata.fp32_layers if found.metadata else [],
                           seconds=time.perf_counter() - start)
    say(f"building {out_path.name} with {platform.describe()} ({found.reason})")
    if options.timing_cache is not None:
        options.timing_cache.parent.mkdir(parents=True, exist_ok=True)
    plan = plan_build(onnx_bytes, model, profile, options, major, str(onnx_path))
    if plan.strategy.pins:
        say(f"{options.precision} with {len(plan.strategy.pins)} ONNX node(s) pinned to fp32")
    engine, warnings = run_plan(plan, onnx_path.name)
    pinned = plan.pin.pinned if plan.pin is not None else []
    metadata = new_metadata(key, onnx_bytes, engine, platform, settings, plan.parse.io, pinned)
    write_entry(out_path, engine, metadata)
    return BuildResult(out_path, sidecar_path(out_path), False, key, found.reason, platform, settings, pinned,
                       warnings, time.perf_counter() - start)


def engine_path_for(onnx_path: str | Path, precision: str) -> Path:
    """`cbam.onnx` -> `cbam.fp16.engine` (or `.fp32.`, `.int8.`); `cbam.fp16.onnx` -> `cbam.fp16.engine`."""
    p = Path(onnx_path)
    stem = p.stem if p.stem.endswith(f".{precision}") else f"{p.stem}.{precision}"
    return p.with_name(f"{stem}.engine")


__all__ = ["BuildOptions", "BuildResult", "EngineBuildFailed", "build_engine", "build_settings", "engine_path_for",
           "run_plan"]

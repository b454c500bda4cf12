"""Engine cache: a key over everything that changes an engine, an atomic engine + JSON sidecar, stale refusal.

An engine file `cbam.engine` travels with `cbam.engine.json`:

    {"format": "attndeploy-tensorrt-engine", "format_version": 1, "key": "<sha256>",
     "onnx_sha256": ..., "engine_sha256": ..., "engine_size": ...,
     "platform": {"tensorrt_version": "10.13.0.35", "gpu_name": "NVIDIA H100 80GB HBM3",
                  "compute_capability": "9.0"},
     "settings": {"precision": "fp16", "precision_in_graph": false, "tf32": false, "workspace_mb": 1024,
                  "profile": {...}, "plugins": [...], "strongly_typed": false,
                  "precision_constraints": "obey", "keep_fp32_ops": [...]},
     "io": [...], "fp32_layers": [...], "created": "...", "attndeploy_version": "0.1.0"}

A TensorRT engine runs only on the TensorRT version and GPU it was built for: `lookup`
treats any difference as a miss (with the reason), and `check_compatible` refuses to
deserialise such an engine.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from attndeploy.errors import UsageError, require
from attndeploy.fileio import write_bytes_atomic, write_json_atomic
from attndeploy.version import __version__

FORMAT, FORMAT_VERSION = "attndeploy-tensorrt-engine", 1
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class Platform:
    """Where an engine was (or is about to be) built: it runs only there."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str  # "9.0"

    def describe(self) -> str:
        return f"TensorRT {self.tensorrt_version} on {self.gpu_name} (sm {self.compute_capability})"


@dataclass(frozen=True)
class BuildSettings:
    """Everything in the builder config that changes the engine. `profile` is `Profile.to_dict()`.

    `precision_in_graph`: the ONNX model already carries `precision` (a mixed fp16 graph,
    or explicit Q/DQ for int8) instead of the builder lowering an fp32 graph.
    """

    precision: str = "fp32"
    precision_in_graph: bool = False
    tf32: bool = False
    workspace_mb: int = 1024
    profile: Mapping[str, Mapping[str, Sequence[int]]] = field(default_factory=dict)
    plugins: tuple[tuple[str, str], ...] = ()  # (path, sha256 of the library)
    strongly_typed: bool = False
    precision_constraints: str = "obey"
    keep_fp32_ops: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        require(self.precision in PRECISIONS, "precision must be a supported engine precision",
                "one of " + ", ".join(PRECISIONS), repr(self.precision))
        require(self.workspace_mb > 0, "workspace_mb must be positive", ">= 1", self.workspace_mb)
        require(self.precision_constraints in ("obey", "prefer"), "precision_constraints must be obey or prefer",
                "obey or prefer", repr(self.precision_constraints))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["profile"] = {k: {b: list(s) for b, s in v.items()} for k, v in self.profile.items()}
        data["plugins"] = [{"path": p, "sha256": h} for p, h in self.plugins]
        data["keep_fp32_ops"] = list(self.keep_fp32_ops)
        return data


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def plugin_fingerprints(paths: Iterable[str | Path]) -> tuple[tuple[str, str], ...]:
    """(resolved path, sha256) per plugin library; a missing library is a `UsageError`."""
    out = []
    for path in paths:
        p = Path(path)
        require(p.is_file(), "a plugin library must exist", "a readable .so file", str(p))
        out.append((str(p.resolve()), sha256_bytes(p.read_bytes())))
    return tuple(out)


def cache_key(onnx_bytes: bytes, platform: Platform, settings: BuildSettings) -> str:
    """sha256 over the ONNX bytes' hash, TensorRT version, GPU name, compute capability and the settings."""
    payload = {"format_version": FORMAT_VERSION, "onnx_sha256": sha256_bytes(onnx_bytes),
               "platform": asdict(platform), "settings": settings.to_dict()}
    return sha256_bytes(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode())


@dataclass
class EngineMetadata:
    """The sidecar's contents (see the module docstring)."""

    key: str
    onnx_sha256: str
    engine_sha256: str
    engine_size: int
    platform: Platform
    settings: dict[str, Any]
    io: list[dict[str, Any]] = field(default_factory=list)
    fp32_layers: list[str] = field(default_factory=list)
    created: str = ""
    attndeploy_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "engine metadata") -> EngineMetadata:
        require(data.get("format") == FORMAT and data.get("format_version") == FORMAT_VERSION,
                "the engine metadata must be attndeploy's sidecar", f"format {FORMAT!r} version {FORMAT_VERSION}",
                f"{data.get('format')!r} version {data.get('format_version')!r} in {source}")
        try:
            return cls(key=data["key"], onnx_sha256=data["onnx_sha256"], engine_sha256=data["engine_sha256"],
                       engine_size=int(data["engine_size"]), platform=Platform(**data["platform"]),
                       settings=dict(data["settings"]), io=list(data.get("io", [])),
                       fp32_layers=list(data.get("fp32_layers", [])), created=str(data.get("created", "")),
                       attndeploy_version=str(data.get("attndeploy_version", "")))
        except (KeyError, TypeError, ValueError) as err:
            raise UsageError("the engine metadata is incomplete", "every field of the sidecar",
                             f"{source}: {type(err).__name__} {err}") from err


def new_metadata(key: str, onnx_bytes: bytes, engine: bytes, platform: Platform, settings: BuildSettings,
                 io: list[dict[str, Any]] | None = None, fp32_layers: list[str] | None = None) -> EngineMetadata:
    return EngineMetadata(key, sha256_bytes(onnx_bytes), sha256_bytes(engine), len(engine), platform,
                          settings.to_dict(), io or [], fp32_layers or [],
                          _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), __version__)


def sidecar_path(engine_path: str | Path) -> Path:
    """`cbam.engine` -> `cbam.engine.json`."""
    p = Path(engine_path)
    return p.with_name(p.name + ".json")


def write_entry(engine_path: str | Path, engine: bytes, metadata: EngineMetadata) -> Path:
    """Write the engine, then its sidecar, each atomically; returns the engine path.

    The old sidecar goes first, so a crash in between leaves an engine without metadata
    (a cache miss), never metadata describing another engine.
    """
    engine_path = Path(engine_path)
    sidecar_path(engine_path).unlink(missing_ok=True)
    write_bytes_atomic(engine_path, engine)
    write_json_atomic(sidecar_path(engine_path), metadata.to_dict())
    return engine_path


def read_metadata(engine_path: str | Path) -> EngineMetadata:
    """The sidecar of `engine_path`; `UsageError` when missing or unreadable."""
    path = sidecar_path(engine_path)
    require(path.is_file(), "a TensorRT engine needs its metadata sidecar", f"{path.name} beside the engine",
            f"no {path}", "rebuild the engine with attndeploy, which writes both")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UsageError("the engine metadata must be valid JSON", "attndeploy's sidecar",
                         f"{path}: {err}") from err
    require(isinstance(data, dict), "the engine metadata must be a JSON object", "an object", type(data).__name__)
    return EngineMetadata.from_dict(data, str(path))


def stale_reason(metadata: EngineMetadata, platform: Platform, strict_gpu_name: bool = True) -> str | None:
    """Why an engine built as `metadata` says cannot run on `platform`, or None."""
    built = metadata.platform
    if built.tensorrt_version != platform.tensorrt_version:
        return (f"built by TensorRT {built.tensorrt_version}, this is TensorRT {platform.tensorrt_version} "
                "(engines do not move between TensorRT versions)")
    if built.compute_capability != platform.compute_capability:
        return (f"built for {built.gpu_name} (sm {built.compute_capability}), this GPU is {platform.gpu_name} "
                f"(sm {platform.compute_capability})")
    if strict_gpu_name and built.gpu_name != platform.gpu_name:
        return f"built for {built.gpu_name}, this GPU is {platform.gpu_name} (same sm {platform.compute_capability})"
    return None


def check_compatible(engine_path: str | Path, metadata: EngineMetadata, platform: Platform,
                     strict_gpu_name: bool = True) -> None:
    """`UsageError` if the engine was built for another TensorRT version or GPU."""
    reason = stale_reason(metadata, platform, strict_gpu_name)
    if reason:
        raise UsageError(f"the engine {Path(engine_path).name} cannot run here", platform.describe(),
                         f"an engine {reason}", "rebuild it on this machine (attndeploy export --engine)")


def verify_engine_bytes(engine_path: str | Path, data: bytes, metadata: EngineMetadata) -> None:
    """`UsageError` if the engine file is truncated or differs from the one its sidecar describes."""
    name = Path(engine_path).name
    require(len(data) == metadata.engine_size, f"the engine {name} must be complete", f"{metadata.engine_size} bytes",
            f"{len(data)} bytes (truncated or replaced)", "rebuild the engine")
    require(sha256_bytes(data) == metadata.engine_sha256, f"the engine {name} must match its metadata",
            f"sha256 {metadata.engine_sha256[:16]}...", f"sha256 {sha256_bytes(data)[:16]}... (corrupt or replaced)",
            "rebuild the engine")


@dataclass(frozen=True)
class Lookup:
    """`hit` with the entry's metadata, or a miss with the reason (for the build log)."""

    hit: bool
    reason: str
    metadata: EngineMetadata | None = None


def lookup(engine_path: str | Path, key: str, platform: Platform) -> Lookup:
    """A hit only if the engine and its sidecar exist, match each other, and carry `key` for `platform`."""
    engine_path = Path(engine_path)
    if not engine_path.is_file():
        return Lookup(False, f"no engine at {engine_path}")
    try:
        metadata = read_metadata(engine_path)
        verify_engine_bytes(engine_path, engine_path.read_bytes(), metadata)
    except UsageError as err:
        return Lookup(False, f"unusable cache entry: {err}")
    reason = stale_reason(metadata, platform)
    if reason:
        return Lookup(False, f"stale engine, {reason}", metadata)
    if metadata.key != key:
        return Lookup(False, "the ONNX model or the build settings changed", metadata)
    return Lookup(True, "cached engine matches", metadata)

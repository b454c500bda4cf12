"""Build a TensorRT engine from an ONNX model: one profile, timing cache, engine cache, fp16 both ways.

    >>> res = build_engine("models/cbam/cbam.onnx", "models/cbam/cbam.engine", fp16=True,
    ...                    profile=derive_profile("models/cbam/cbam.onnx", (1, 64, 56, 56)))
    >>> res.engine_path, res.cached, res.fp32_layers[:2]

TensorRT 8.6 / 10 build weakly typed networks (explicit batch on 8.x): fp16 sets the
FP16 flag and pins `precision.fp32_plan`'s layers to fp32 under OBEY (or PREFER)
PRECISION_CONSTRAINTS. TensorRT 11 builds strongly typed networks only: fp16 converts
the ONNX graph itself (`convert_onnx_to_fp16`). TF32 is always off, so an fp32 engine
matches eager fp32 within atol 1e-4 / rtol 1e-3.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx

from attndeploy.errors import CheckFailed, UsageError, require
from attndeploy.lint.scopes import module_scope, scope_from_node_name
from attndeploy.tensorrt._api import (
    current_platform,
    dims,
    dtype_name,
    load_plugins,
    logged,
    major_version,
    make_logger,
)
from attndeploy.tensorrt.cache import (
    BuildSettings,
    Platform,
    cache_key,
    lookup,
    new_metadata,
    plugin_fingerprints,
    read_timing_cache,
    sidecar_path,
    write_entry,
    write_timing_cache,
)
from attndeploy.tensorrt.precision import (
    KEEP_FP32_OPS,
    apply_fp32_plan,
    convert_onnx_to_fp16,
    fp32_plan,
)
from attndeploy.tensorrt.profiles import Profile, derive_profile

if TYPE_CHECKING:
    import tensorrt as trt

DEFAULT_WORKSPACE_MB = 2048
Log = Callable[[str], None]


class EngineBuildFailed(CheckFailed):
    """The parser refused the model, or the builder found no implementation: the artifact is not deployable."""


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


def parser_errors(parser: trt.OnnxParser, model: onnx.ModelProto) -> list[str]:
    """Every parser error as `node <name> (<op>) in module '<scope>': <description>`."""
    nodes = list(model.graph.node)
    lines = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        index = int(err.node())
        node = nodes[index] if 0 <= index < len(nodes) else None
        name = str(err.node_name()) if hasattr(err, "node_name") else ""  # node_name/node_operator: TensorRT >= 9.1
        op = str(err.node_operator()) if hasattr(err, "node_operator") else ""
        name = name or (node.name if node is not None else "")
        op = op or (node.op_type if node is not None else "")
        scope = module_scope(node) if node is not None else (scope_from_node_name(name) or "")
        where = f"node {name or '#' + str(index)} ({op or '?'})" + (f" in module '{scope}'" if scope else "")
        lines.append(f"{where}: {err.desc()} [{err.code()}]")
    return lines


def describe_io(network: trt.INetworkDefinition) -> list[dict[str, Any]]:
    """Name, mode, dtype and shape (-1 = dynamic) of every network input and output."""
    io: list[dict[str, Any]] = []
    for mode, count, get in (("input", network.num_inputs, network.get_input),
                             ("output", network.num_outputs, network.get_output)):
        for i in range(count):
            tensor = get(i)
            io.append({"name": tensor.name, "mode": mode, "dtype": dtype_name(tensor.dtype),
                       "shape": list(dims(tensor.shape))})
    return io


def _profile_for(network: trt.INetworkDefinition, profile: Profile) -> list[tuple[str, list[int], list[int], list[int]]]:
    names = [network.get_input(i).name for i in range(network.num_inputs)]
    known = {p.name for p in profile.inputs}
    missing = [n for n in names if n not in known]
    require(not missing, "the optimization profile must cover every network input", ", ".join(names),
            f"no shapes for {missing}")
    return [(n, list(profile[n].min), list(profile[n].opt), list(profile[n].max)) for n in names]


def build_engine(
    onnx_path: str | Path,
    out_path: str | Path,
    *,
    fp16: bool = False,
    profile: Profile | None = None,
    workspace_mb: int = DEFAULT_WORKSPACE_MB,
    timing_cache: str | Path | None = None,
    plugins: Sequence[str | Path] = (),
    strongly_typed: bool | None = None,
    precision_constraints: str = "obey",
    keep_fp32_ops: Iterable[str] = KEEP_FP32_OPS,
    force: bool = False,
    log: Log | None = None,
) -> BuildResult:
    """Build (or reuse) the engine for `onnx_path` at `out_path` (+ `<out_path>.json`).

    `profile`: one optimization profile (`derive_profile`); a model with static inputs
    needs none. `strongly_typed=None` picks by version (TensorRT >= 11: strongly typed).
    `timing_cache`: a file loaded before and saved after the build, shared across builds.
    `plugins`: extra plugin libraries; TensorRT's own (ModulatedDeformConv2d) are always
    registered. Raises `UsageError` (no TensorRT, no GPU, bad arguments) and
    `EngineBuildFailed` (every parser error with its node and PyTorch module scope).
    """
    log = log or (lambda _msg: None)
    start = time.perf_counter()
    platform = current_platform()
    import tensorrt as trt

    major = major_version(platform.tensorrt_version)
    strong = major >= 11 if strongly_typed is None else strongly_typed
    require(strong or major < 11, "TensorRT 11 builds strongly typed networks only", "strongly_typed=True or None",
            strongly_typed)
    onnx_path, out_path = Path(onnx_path), Path(out_path)
    require(onnx_path.is_file(), "the ONNX model must exist", "a readable .onnx file", str(onnx_path))
    onnx_bytes = onnx_path.read_bytes()
    try:
        model = onnx.load_from_string(onnx_bytes)
    except Exception as err:  # protobuf's DecodeError
        raise UsageError("the file must be an ONNX model", "a serialized onnx.ModelProto",
                         f"{onnx_path} ({type(err).__name__})") from err
    keep = tuple(sorted(keep_fp32_ops))
    profile = profile or derive_profile(model)
    settings = BuildSettings(precision="fp16" if fp16 else "fp32", tf32=False, workspace_mb=workspace_mb,
                             profile=profile.to_dict(), plugins=plugin_fingerprints(plugins), strongly_typed=strong,
                             precision_constraints=precision_constraints, keep_fp32_ops=keep if fp16 else ())
    key = cache_key(onnx_bytes, platform, settings)
    found = lookup(out_path, key, platform)
    if found.hit and not force:
        log(f"engine cache hit: {out_path}")
        return BuildResult(out_path, sidecar_path(out_path), True, key, found.reason, platform, settings,
                           found.metadata.fp32_layers if found.metadata else [], seconds=time.perf_counter() - start)
    log(f"building {out_path.name} with {platform.describe()} ({found.reason})")

    parse_bytes = onnx_bytes
    if fp16 and strong:
        parse_bytes = convert_onnx_to_fp16(model, keep).SerializeToString()
    logger = make_logger()
    load_plugins(logger, plugins)
    builder = trt.Builder(logger)
    flags = 0
    if major < 10:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    strongly_typed_flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if strong and strongly_typed_flag is not None:  # a release where strong typing is implicit may drop the flag
        flags |= 1 << int(strongly_typed_flag)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(parse_bytes, str(onnx_path)):
        errors = parser_errors(parser, model)
        lint_key = "8.6" if major < 10 else "10" if major == 10 else "11"
        raise EngineBuildFailed(f"TensorRT {platform.tensorrt_version}'s ONNX parser refused {onnx_path.name} "
                                f"({len(errors)} error(s); `attndeploy lint {onnx_path} --trt {lint_key}` "
                                "explains most):\n  " + "\n  ".join(errors))

    config = builder.create_builder_config()
    warnings: list[str] = []
    tf32 = getattr(trt.BuilderFlag, "TF32", None)
    if tf32 is not None:
        config.clear_flag(tf32)  # fp32 engines must match eager fp32 within atol 1e-4
    else:
        warnings.append("this TensorRT has no BuilderFlag.TF32 to clear")
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    opt = builder.create_optimization_profile()
    for name, lo, best, hi in _profile_for(network, profile):
        opt.set_shape(name, trt.Dims(lo), trt.Dims(best), trt.Dims(hi))
    config.add_optimization_profile(opt)
    pinned: list[str] = []
    if fp16 and not strong:
        config.set_flag(trt.BuilderFlag.FP16)
        pinned = apply_fp32_plan(network, fp32_plan(model, keep))
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS if precision_constraints == "obey"
                        else trt.BuilderFlag.PREFER_PRECISION_CONSTRAINTS)
        log(f"fp16 with {len(pinned)} layer(s) pinned to fp32")
    cache = config.create_timing_cache(read_timing_cache(timing_cache))
    if not config.set_timing_cache(cache, False):
        warnings.append(f"timing cache {timing_cache} is for another device or TensorRT version: starting empty")
        config.set_timing_cache(config.create_timing_cache(b""), False)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildFailed(f"TensorRT could not build {onnx_path.name}: "
                                + " | ".join(m for m in logged(logger) if m.startswith(("ERROR", "INTERNAL"))))
    engine = bytes(memoryview(serialized))
    if timing_cache is not None:
        write_timing_cache(timing_cache, bytes(memoryview(config.get_timing_cache().serialize())))
    metadata = new_metadata(key, onnx_bytes, engine, platform, settings, describe_io(network), pinned)
    write_entry(out_path, engine, metadata)
    warnings += [m for m in logged(logger) if m.startswith("WARNING")]
    return BuildResult(out_path, sidecar_path(out_path), False, key, found.reason, platform, settings, pinned,
                       warnings, time.perf_counter() - start)


def engine_path_for(onnx_path: str | Path, fp16: bool) -> Path:
    """`models/cbam/cbam.onnx` -> `models/cbam/cbam.fp16.engine` (or `.fp32.engine`)."""
    p = Path(onnx_path)
    return p.with_name(f"{p.stem}.{'fp16' if fp16 else 'fp32'}.engine")


__all__ = ["BuildResult", "EngineBuildFailed", "build_engine", "describe_io", "engine_path_for", "parser_errors"]

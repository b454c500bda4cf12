"""The build plan: which Polygraphy loaders, with which arguments, turn an ONNX model into engine bytes.

    plan = plan_build(onnx_bytes, model, profile, BuildOptions(precision="fp16"), tensorrt_major=10)
    plan.config.fp16, plan.config.precision_constraints     # True, "obey"
    engine_bytes = plan.engine()                            # only this call needs TensorRT (and a GPU)

Polygraphy does what it maintains against every TensorRT release: network creation
(`CreateNetwork`, inside `network.ParseOnnx`), the builder config (`CreateConfig`: TF32 off,
precision flags, the optimization profile, the workspace limit, timing cache load,
precision constraints), network post-processing (`PostprocessNetwork`) and the build
with the timing cache saved (`EngineBytesFromNetwork`). Ours: the parse with per-node
errors, the fp32 pinning and the strategy per TensorRT generation (`options.strategy`).
Polygraphy's loaders store their arguments when constructed and import TensorRT only
when called, so `plan_build` runs (and is tested) without TensorRT.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import onnx

from attndeploy.errors import require
from attndeploy.precision.fp16 import convert_onnx_to_fp16
from attndeploy.tensorrt._api import polygraphy_log
from attndeploy.tensorrt.network import ParseOnnx, PinFp32
from attndeploy.tensorrt.options import BuildOptions, Strategy, strategy
from attndeploy.tensorrt.profiles import Profile, model_inputs


class PoolLimits(Mapping[Any, int]):
    """`{trt.MemoryPoolType.<name>: bytes}` for `CreateConfig(memory_pool_limits=...)`.

    Keyed by pool name (`limits`, e.g. {"WORKSPACE": 2 << 30}); the TensorRT enum members are
    looked up only when Polygraphy iterates the mapping, inside the build.
    """

    def __init__(self, limits: Mapping[str, int]) -> None:
        self.limits = dict(limits)

    def __getitem__(self, key: Any) -> int:
        return self.limits[getattr(key, "name", key)]

    def __iter__(self) -> Iterator[Any]:
        import tensorrt as trt

        return (getattr(trt.MemoryPoolType, name) for name in self.limits)

    def __len__(self) -> int:
        return len(self.limits)

    def __repr__(self) -> str:
        return f"PoolLimits({self.limits})"


@dataclass(frozen=True)
class BuildPlan:
    """Polygraphy loaders for one build; `engine()` builds and returns the serialized engine.

    `parse`: our network loader (its `io` is filled by the build); `pin`: the fp32 pinning
    step (None when nothing is pinned; its `pinned` is filled by the build); `network`:
    what the config and the build get (`parse`, or `PostprocessNetwork(parse, pin)`);
    `config`: Polygraphy's `CreateConfig`; `engine`: `EngineBytesFromNetwork(network, config)`.
    """

    strategy: Strategy
    parse: ParseOnnx
    pin: PinFp32 | None
    network: Any
    config: Any
    engine: Any


def polygraphy_profile(profile: Profile) -> Any:
    """Our `Profile` as Polygraphy's (`{input name: ShapeTuple(min, opt, max)}`)."""
    from polygraphy.backend.trt import Profile as PolygraphyProfile

    out = PolygraphyProfile()
    for p in profile.inputs:
        out.add(p.name, min=tuple(p.min), opt=tuple(p.opt), max=tuple(p.max))
    return out


def plan_build(onnx_bytes: bytes, model: onnx.ModelProto, profile: Profile, options: BuildOptions,
               tensorrt_major: int, source: str = "model.onnx") -> BuildPlan:
    """The loaders that build `model` (serialized as `onnx_bytes`, read from `source`) for TensorRT `tensorrt_major`."""
    from polygraphy.backend.trt import (
        CreateConfig,
        EngineBytesFromNetwork,
        LoadPlugins,
        PostprocessNetwork,
    )

    polygraphy_log()  # before any loader logs: Polygraphy prints to stdout otherwise
    names = list(model_inputs(model))
    covered = [p.name for p in profile.inputs]
    require(sorted(covered) == sorted(names), "the optimization profile must cover every model input",
            ", ".join(names), ", ".join(covered) or "no inputs")
    how = strategy(options, tensorrt_major, model)
    parsed, parsed_bytes = model, onnx_bytes
    if how.convert_fp16:
        parsed = convert_onnx_to_fp16(model, options.keep_fp32_ops)
        parsed_bytes = parsed.SerializeToString()
    parse = ParseOnnx(parsed_bytes, parsed, how.strongly_typed, source, tensorrt_major)
    pin = PinFp32(how.pins) if how.pins else None
    network = PostprocessNetwork(parse, pin, "pin_fp32") if pin is not None else parse
    if options.plugins:  # the parser needs the creators of the plugin nodes before it parses
        network = LoadPlugins(plugins=[str(p) for p in options.plugins], obj=network)
    timing = options.timing_cache
    config = CreateConfig(
        tf32=False,  # fp32 engines must match eager fp32 within atol 1e-4
        fp16=how.fp16_flag, int8=how.int8_flag, precision_constraints=how.constraints,
        profiles=[polygraphy_profile(profile)],
        memory_pool_limits=PoolLimits({"WORKSPACE": options.workspace_mb << 20}),
        load_timing_cache=str(timing) if timing is not None and timing.is_file() else None,
    )
    engine = EngineBytesFromNetwork(network, config, save_timing_cache=str(timing) if timing is not None else None)
    return BuildPlan(how, parse, pin, network, config, engine)

"""What to build (`BuildOptions`) and how each TensorRT generation builds it (`strategy`): our precision policy.

- fp32: TF32 off (8.6, 10); strongly typed on 11.
- fp16 over an fp32 graph (our keep-fp32 policy): on 8.6 / 10 the FP16 flag with the
  `attndeploy.precision.plan.fp32_plan` layers pinned to fp32 under OBEY (or PREFER) precision
  constraints; on 11 (no FP16 flag) the ONNX graph is rewritten to mixed fp16
  (`attndeploy.precision.fp16.convert_onnx_to_fp16`) and built strongly typed.
- a graph that already carries its precision (`precision_in_graph`: a mixed fp16 graph,
  or explicit Q/DQ for int8): strongly typed from TensorRT 10, no precision flags; on 8.6
  (no strong typing) the FP16 flag (INT8 for Q/DQ, plus FP16 when the graph holds
  float16) with the layers the graph computes in float32 pinned, constraints obeyed.
- int8 needs explicit Q/DQ: implicit calibration is deprecated since 10.1 and gone in 11.

Nothing here needs TensorRT: the strategy is a function of the options, the TensorRT
major version and the ONNX graph, so it is unit-tested on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx

from attndeploy.errors import require
from attndeploy.precision.plan import (
    KEEP_FP32_OPS,
    Fp32Pin,
    fp32_plan,
    graph_fp32_plan,
    graph_precision,
    holds_fp16,
)
from attndeploy.tensorrt.cache import PRECISIONS

DEFAULT_WORKSPACE_MB = 2048
STRONG_TYPING_FROM = 10  # STRONGLY_TYPED exists from TensorRT 9/10
STRONG_TYPING_ONLY_FROM = 11  # TensorRT 11 has no FP16/INT8 builder flags


@dataclass(frozen=True)
class BuildOptions:
    """Everything besides the ONNX model and the profile that decides an engine (and its cache key).

    `precision`: "fp32", "fp16" or "int8". `precision_in_graph`: the ONNX model already
    carries `precision` (a mixed fp16 graph, or explicit Q/DQ); otherwise an fp16 engine
    comes from our keep-fp32 policy over an fp32 graph (`keep_fp32_ops`).
    `strongly_typed=None` picks by version (see the module docstring). `timing_cache`: a file
    read before and extended after the build. `plugins`: extra plugin libraries (TensorRT's
    own, e.g. ModulatedDeformConv2d, are always registered).
    """

    precision: str = "fp32"
    precision_in_graph: bool = False
    strongly_typed: bool | None = None
    precision_constraints: str = "obey"
    keep_fp32_ops: tuple[str, ...] = tuple(sorted(KEEP_FP32_OPS))
    workspace_mb: int = DEFAULT_WORKSPACE_MB
    timing_cache: Path | None = None
    plugins: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        require(self.precision in PRECISIONS, "precision must be a supported engine precision",
                "one of " + ", ".join(PRECISIONS), repr(self.precision))
        require(self.precision != "int8" or self.precision_in_graph, "int8 engines build from an explicit Q/DQ graph",
                "precision_in_graph=True with a Q/DQ ONNX model (attndeploy export --precision int8)",
                "int8 over an fp32 graph (implicit calibration is deprecated in TensorRT 10.1, gone in 11)")
        require(self.precision != "fp32" or not self.precision_in_graph,
                "precision_in_graph describes a reduced-precision graph", "precision fp16 or int8", "fp32")
        require(self.precision_constraints in ("obey", "prefer"), "precision_constraints must be obey or prefer",
                "obey or prefer", repr(self.precision_constraints))
        require(self.workspace_mb > 0, "workspace_mb must be positive", ">= 1", self.workspace_mb)
        object.__setattr__(self, "keep_fp32_ops", tuple(sorted(set(self.keep_fp32_ops))))
        object.__setattr__(self, "plugins", tuple(Path(p) for p in self.plugins))
        if self.timing_cache is not None:
            object.__setattr__(self, "timing_cache", Path(self.timing_cache))


@dataclass(frozen=True)
class Strategy:
    """How one TensorRT generation builds `BuildOptions` for one graph.

    `convert_fp16`: parse `attndeploy.precision.fp16.convert_onnx_to_fp16(model)` instead of the model.
    `fp16_flag` / `int8_flag`: builder flags (weakly typed networks only). `pins`: ONNX
    nodes whose layers are pinned to fp32 (with `constraints`, "obey" or "prefer").
    """

    strongly_typed: bool
    convert_fp16: bool = False
    fp16_flag: bool = False
    int8_flag: bool = False
    pins: tuple[Fp32Pin, ...] = ()
    constraints: str | None = None


def strongly_typed(options: BuildOptions, major: int) -> bool:
    """Whether TensorRT `major` builds `options` as a strongly typed network (`UsageError` if it cannot)."""
    wanted = options.strongly_typed
    if wanted is None:
        return major >= STRONG_TYPING_ONLY_FROM or (options.precision_in_graph and major >= STRONG_TYPING_FROM)
    require(wanted or major < STRONG_TYPING_ONLY_FROM, "TensorRT 11 builds strongly typed networks only",
            "strongly_typed=True or None", f"strongly_typed=False with TensorRT {major}")
    require(not wanted or major >= STRONG_TYPING_FROM, "strongly typed networks need TensorRT >= 10",
            "strongly_typed=False or None", f"strongly_typed=True with TensorRT {major}")
    return wanted


def strategy(options: BuildOptions, major: int, model: onnx.ModelProto) -> Strategy:
    """The strategy for TensorRT `major` (8, 10, 11, ...); `UsageError` for a graph that does not match."""
    if options.precision_in_graph:
        found = graph_precision(model)
        require(found == options.precision, f"the ONNX model must already be {options.precision}",
                "float16 tensors" if options.precision == "fp16" else "QuantizeLinear/DequantizeLinear nodes",
                f"a {found} graph (export with --precision {options.precision}, or drop precision_in_graph)")
    strong = strongly_typed(options, major)
    if strong or options.precision == "fp32":
        convert = options.precision == "fp16" and not options.precision_in_graph and strong
        return Strategy(strong, convert_fp16=convert)
    if not options.precision_in_graph:  # fp16 from our policy over an fp32 graph
        pins = fp32_plan(model, options.keep_fp32_ops)
        return Strategy(False, fp16_flag=True, pins=tuple(pins), constraints=options.precision_constraints)
    fp16 = options.precision == "fp16" or holds_fp16(model)
    pins = graph_fp32_plan(model) if fp16 else []
    return Strategy(False, fp16_flag=fp16, int8_flag=options.precision == "int8", pins=tuple(pins),
                    constraints=options.precision_constraints)


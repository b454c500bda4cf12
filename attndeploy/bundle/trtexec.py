"""The `trtexec` command line that builds a graph's engine on each TensorRT generation, as attndeploy builds it.

The precision comes from the graph (`attndeploy.precision.plan.graph_precision`) and the
flags from the same policy the engine builder uses (`attndeploy.tensorrt.options.strategy`),
so an engine built on the device is built the way the export verified:

| graph | TensorRT 8.6 | TensorRT 10 | TensorRT 11 |
|---|---|---|---|
| fp32 | `--noTF32` | `--noTF32` | `--stronglyTyped --noTF32` |
| fp16 (mixed) | `--fp16`, the graph's fp32 layers pinned | `--stronglyTyped` | `--stronglyTyped` |
| int8 (Q/DQ) | `--int8` (+ `--fp16` and pins if it holds fp16) | `--stronglyTyped` | `--stronglyTyped` |

TensorRT 10 and 11 take a graph that carries its precision strongly typed, with no
precision flags (NVIDIA: "Use explicit quantization with Strong Typing. Precision-control
build flags are not required and should not be specified"; 11 has no `--fp16`/`--int8`).
TensorRT 8.6 has no strong typing: `--int8` for Q/DQ, and `--fp16` only where the graph
holds float16 (a Q/DQ graph's other layers then stay fp32, as verified). Pins are
`--precisionConstraints=obey --layerPrecisions=<node>:fp32`, matched by trtexec against the
layer names the ONNX parser gives (the node names). TF32 stays off, as in the builder. Every line asks
for detailed layer information (`--profilingVerbosity=detailed`, Polygraphy's default), from which
`attndeploy verify` reads the precision each layer runs at.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

import onnx

from attndeploy.precision.plan import graph_precision
from attndeploy.shapes import Shape, format_shape
from attndeploy.tensorrt.options import BuildOptions, strategy


@dataclass(frozen=True)
class TrtTarget:
    """One TensorRT generation the build script has a line for. `key`: the lint key (`attndeploy lint --trt`)."""

    key: str
    major: int
    jetpack: str


# Which JetPack ships which TensorRT: NVIDIA's JetPack release notes and TensorRT 11.4.1's Jetson migration notes
# (Orin on JetPack 6 stays on TensorRT 10.3; 11.5.0 is not supported on JetPack).
TARGETS: tuple[TrtTarget, ...] = (
    TrtTarget("8.6", 8, "JetPack 6.0 (TensorRT 8.6.2)"),
    TrtTarget("10", 10, "JetPack 6.1 / 6.2 (TensorRT 10.3, Jetson Orin), 7.0 / 7.1 (10.13, Thor), 7.2 (10.16)"),
    TrtTarget("11", 11, "JetPack >= 7.2.2 (TensorRT 11.4.1, AGX Orin and Thor)"),
)


# Every layer's precision in the engine's layer information (`attndeploy verify` reads it, as Polygraphy's builds keep it).
PROFILING = "--profilingVerbosity=detailed"


@dataclass(frozen=True)
class ShapeProfile:
    """min / opt / max of the graph's dynamic input `name` (trtexec's --minShapes / --optShapes / --maxShapes)."""

    name: str
    min: Shape
    opt: Shape
    max: Shape


def _name(name: str) -> str:
    """A tensor or layer name in a trtexec spec: trtexec splits specs at ':' and reads a name in single quotes as is."""
    return f"'{name}'" if ":" in name else name


def _shape_arg(flag: str, name: str, shape: Shape) -> str:
    return f"--{flag}={_name(name)}:{format_shape(shape)}"


def precision_flags(model: onnx.ModelProto, major: int) -> list[str]:
    """The precision flags for `model` on TensorRT `major` (8, 10, 11): see the module's table."""
    precision = graph_precision(model)
    options = BuildOptions(precision=precision, precision_in_graph=precision != "fp32")
    plan = strategy(options, major, model)
    flags = ["--stronglyTyped"] if plan.strongly_typed else []
    flags += ["--fp16"] if plan.fp16_flag else []
    flags += ["--int8"] if plan.int8_flag else []
    if plan.pins:
        flags += [f"--precisionConstraints={plan.constraints or 'obey'}",
                  "--layerPrecisions=" + ",".join(f"{_name(p.node)}:fp32" for p in plan.pins)]
    return [*flags, "--noTF32"]


def trtexec_args(model: onnx.ModelProto, onnx_file: str, engine_file: str, timing_cache: str, major: int,
                 profile: ShapeProfile | None) -> list[str]:
    """trtexec's arguments (without the program) building `onnx_file` into `engine_file` on TensorRT `major`.

    File names are as the script sees them (relative to its folder). `profile`: the dynamic
    input's shapes; None for a graph whose inputs are all static (trtexec refuses shapes then).
    """
    args = [f"--onnx={onnx_file}", f"--saveEngine={engine_file}", f"--timingCacheFile={timing_cache}",
            PROFILING]
    if profile is not None:
        args += [_shape_arg("minShapes", profile.name, profile.min), _shape_arg("optShapes", profile.name, profile.opt),
                 _shape_arg("maxShapes", profile.name, profile.max)]
    return args + precision_flags(model, major)


def command_line(args: Sequence[str], indent: str = "      ", width: int = 110) -> str:
    """`"$TRTEXEC" <args> "$@"` for bash, every argument quoted, continued with `\\` past `width` characters."""
    words = ['"$TRTEXEC"', *(shlex.quote(a) for a in args), '"$@"']
    lines: list[str] = []
    line = ""
    for word in words:
        if line and len(indent) + len(line) + 1 + len(word) > width:
            lines.append(line)
            line = "  " + word
        else:
            line = f"{line} {word}" if line else word
    return (" \\\n" + indent).join([*lines, line])

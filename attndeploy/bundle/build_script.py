"""`build_engine.sh`: the trtexec lines that build a bundle's engines on the device, for TensorRT 8.6, 10 and 11.

    bash build_engine.sh                        # for the TensorRT found on the device
    bash build_engine.sh --trt 10 --onnx cbam.onnx -- --verbose

The script picks its line from `trtexec`'s banner (`[TensorRT v100300]`), else the
`libnvinfer-bin` package (dpkg), else Python's `tensorrt`; `--trt` overrides. Each graph's
line per TensorRT comes from `attndeploy.bundle.trtexec` (flags as the engine builder
sets them); a graph that `attndeploy lint --trt <version>` finds the parser refusing gets,
for that version, a line printing the first refusal and exiting 1 instead of a build.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

import onnx

from attndeploy.bundle.graph_io import check_shapes, graph_io, read_graph
from attndeploy.bundle.trtexec import TARGETS, ShapeProfile, TrtTarget, command_line, trtexec_args
from attndeploy.errors import require
from attndeploy.fileio import ensure_writable_dir, write_bytes_atomic
from attndeploy.lint.trt_lint import ERROR, Finding, lint_releases
from attndeploy.onnxgraph import all_graphs
from attndeploy.precision.plan import graph_precision
from attndeploy.shapes import Shape, format_shape
from attndeploy.version import __version__

SCRIPT_NAME = "build_engine.sh"
# What onnx-tensorrt's operators.md (release/8.6-GA, 10.1-GA) and TensorRT's NMS layer docs say about these ops.
OP_NOTES = {
    "NonMaxSuppression": (
        "# NonMaxSuppression: parsed natively on 8.6, 10 and 11 (TensorRT's NMS layer, since 8.5), boxes and scores",
        "#   fp32 or fp16; the selected boxes have a data-dependent count; TensorRT considers at most 5000 boxes",
        "#   per image above the score threshold (2000 on SM 5.3 / 6.2 GPUs)."),
    "TopK": ("# TopK: TensorRT 10 and 11 need sorted=1 and K < 3840 (checked for this graph by attndeploy's lint).",),
}

_ARGUMENTS = r"""set -euo pipefail
cd "$(dirname "$0")"

TRTEXEC=${TRTEXEC:-$(command -v trtexec || echo /usr/src/tensorrt/bin/trtexec)}
trt=""
only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --trt) [ $# -ge 2 ] || { echo "error: --trt needs a value: expected 8.6, 10 or 11" >&2; exit 2; }; trt=$2; shift 2 ;;
    --trt=*) trt=${1#--trt=}; shift ;;
    --onnx) [ $# -ge 2 ] || { echo "error: --onnx needs a value: expected one of $GRAPHS" >&2; exit 2; }; only=$2; shift 2 ;;
    --onnx=*) only=${1#--onnx=}; shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,/^$/p' "$0"; exit 0 ;;
    *) echo "error: unknown argument: expected --trt 8.6|10|11, --onnx FILE, or -- and trtexec flags, got $1" >&2
       exit 2 ;;
  esac
done
"""

_DETECT = r"""tensorrt_version() {  # the TensorRT here, e.g. 10.3.0 (nothing when none is found)
  local v=""
  if command -v "$TRTEXEC" >/dev/null 2>&1; then
    v=$("$TRTEXEC" --help 2>&1 | sed -n 's/.*\[TensorRT v\([0-9][0-9]*\)\].*/\1/p' | head -n 1 || true)
  fi
  if [ -n "$v" ]; then  # v8602 -> 8.6.2, v100300 -> 10.3.0
    if [ "${#v}" -ge 6 ]; then echo "$((v / 10000)).$((v / 100 % 100)).$((v % 100))"
    else echo "$((v / 1000)).$((v / 100 % 10)).$((v % 100))"; fi
    return
  fi
  v=$(dpkg-query -W -f='${Version}' libnvinfer-bin 2>/dev/null || true)
  [ -n "$v" ] || v=$(python3 -c 'import tensorrt; print(tensorrt.__version__)' 2>/dev/null || true)
  echo "${v%%-*}"
}

if [ -z "$trt" ]; then
  version=$(tensorrt_version)
  case "$version" in
    8.6|8.6.*) trt=8.6 ;;
    10|10.*) trt=10 ;;
    11|11.*) trt=11 ;;
    "") echo "error: TensorRT must be installed: expected trtexec (TRTEXEC=$TRTEXEC), the libnvinfer-bin package" \
             "or python3's tensorrt, got none (or pass --trt 8.6|10|11)" >&2; exit 2 ;;
    *) echo "error: this script has lines for TensorRT 8.6 (JetPack 6.0), 10 (JetPack 6.1 to 7.2) and 11" \
            "(JetPack >= 7.2.2): expected one of them, got TensorRT $version" >&2; exit 2 ;;
  esac
  echo "TensorRT $version found: the TensorRT $trt line" >&2
fi
command -v "$TRTEXEC" >/dev/null 2>&1 || {
  echo "error: trtexec must be executable: expected it at \$TRTEXEC or on PATH, got $TRTEXEC" >&2; exit 2; }
want() { [ -z "$only" ] || [ "$only" = "$1" ]; }
failed=0
"""


def _relative(path: Path, folder: Path) -> str:
    resolved, base = path.resolve(), folder.resolve()
    require(resolved.is_relative_to(base), "the ONNX graphs must lie in the bundle folder (the script builds "
            "them from there)", f"files under {folder}", str(path))
    return resolved.relative_to(base).as_posix()


def _profile(model: onnx.ModelProto, input_name: str, shapes: tuple[Shape, Shape, Shape]) -> ShapeProfile | None:
    inputs, _ = graph_io(model)
    names = [t.name for t in inputs]
    dynamic = [t for t in inputs if t.dynamic]
    require(all(t.name == input_name for t in dynamic), "the build script takes shapes for one dynamic input",
            f"the graph's only dynamic input to be {input_name!r}", f"dynamic inputs {[t.name for t in dynamic]}")
    if not dynamic:
        require(input_name in names, "input_name must name a graph input", "one of " + ", ".join(names),
                repr(input_name))
        return None
    check_shapes(dynamic[0], *shapes)
    return ShapeProfile(input_name, *shapes)


def _graph_lines(model: onnx.ModelProto, findings: list[Finding], onnx_file: str, target: TrtTarget,
                 profile: ShapeProfile | None) -> list[str]:
    refused = [f for f in findings if f.severity == ERROR]
    engine = onnx_file.removesuffix(".onnx") + ".engine"
    if refused:
        message = f"error: TensorRT {target.key}'s ONNX parser refuses {onnx_file}: {refused[0].format()}"
        action = f"echo {shlex.quote(message)} >&2; failed=1"
    else:
        action = command_line(trtexec_args(model, onnx_file, engine, f"timing.trt{target.key}.cache", target.major,
                                           profile))
    return [f"    if want {shlex.quote(onnx_file)}; then", f"      {action}", "    fi"]


def _header(graphs: Sequence[tuple[str, str]], profile_text: str, ops: set[str]) -> list[str]:
    listing = "; ".join(f"{name} ({precision}) -> {name.removesuffix('.onnx')}.engine" for name, precision in graphs)
    lines = ["#!/usr/bin/env bash",
             "# Builds this bundle's TensorRT engines on the device (an engine is specific to its GPU and TensorRT).",
             "#   bash build_engine.sh                        # for the TensorRT found here",
             "#   bash build_engine.sh --trt 10               # 8.6, 10 or 11",
             "#   bash build_engine.sh --onnx FILE -- --verbose   # one graph; arguments after -- go to trtexec",
             "# TRTEXEC: the trtexec to run (default: on PATH, else /usr/src/tensorrt/bin/trtexec, where JetPack puts it).",
             f"# Graphs: {listing}", f"# {profile_text}", f"# Written by attndeploy {__version__}.", ""]
    notes = [line for op in sorted(ops & set(OP_NOTES)) for line in OP_NOTES[op]]
    return lines + (notes + [""] if notes else [])


def build_script(onnx_paths: Sequence[Path], folder: Path, input_name: str, min_shape: Shape, opt_shape: Shape,
                 max_shape: Shape) -> str:
    """The script's text for `onnx_paths` (inside `folder`, where the script goes); see `write_build_script`."""
    require(len(onnx_paths) > 0, "the build script needs at least one ONNX graph", "one or more paths", "none")
    shapes = (tuple(min_shape), tuple(opt_shape), tuple(max_shape))
    graphs = [(Path(p), _relative(Path(p), folder), read_graph(Path(p))) for p in onnx_paths]
    profiles = [_profile(model, input_name, shapes) for _, _, model in graphs]
    ops = {n.op_type for _, _, model in graphs for g in all_graphs(model.graph) for n in g.node}
    profile_text = (f"Input {input_name!r}: min {format_shape(shapes[0])}, opt {format_shape(shapes[1])}, "
                    f"max {format_shape(shapes[2])}" if any(profiles) else f"Input {input_name!r}: static shapes")
    lines = _header([(rel, graph_precision(model)) for _, rel, model in graphs], profile_text, ops)
    lines.append("GRAPHS=" + shlex.quote(" ".join(rel for _, rel, _ in graphs)))
    known = "|".join(shlex.quote(rel) for _, rel, _ in graphs)
    lines += [_ARGUMENTS + 'case "$only" in', f'  ""|{known}) ;;', '  *) echo "error: --onnx must name a graph '
              'of this bundle: expected one of $GRAPHS, got $only" >&2; exit 2 ;;', "esac", "", _DETECT]
    lines.append('case "$trt" in')
    findings = [lint_releases(path, [target.key for target in TARGETS]) for path, _, _ in graphs]
    for target in TARGETS:
        lines += [f"  {target.key})", f"    # TensorRT {target.key}: {target.jetpack}"]
        for (_, rel, model), profile, found in zip(graphs, profiles, findings):
            lines += _graph_lines(model, found[target.key], rel, target, profile)
        lines.append("    ;;")
    lines += ['  *) echo "error: --trt must be 8.6, 10 or 11: expected one of them, got $trt" >&2; exit 2 ;;', "esac",
              'exit "$failed"', ""]
    return "\n".join(lines)


def write_build_script(onnx_paths: Sequence[Path], out_dir: Path, input_name: str, min_shape: Shape,
                       opt_shape: Shape, max_shape: Shape) -> Path:
    """Write `out_dir/build_engine.sh` (executable) building each of `onnx_paths` (files inside `out_dir`) into
    `<stem>.engine` beside it, for TensorRT 8.6, 10 and 11; returns the script's path.

    `input_name` and `min_shape` / `opt_shape` / `max_shape`: the profile of the graphs'
    dynamic input (N, C, H, W), inside the model's shape rule; ignored for all-static graphs.
    Each graph's precision is read from the graph. `UsageError` for shapes that do not fit
    the input, a second dynamic input, or a graph outside `out_dir`.
    """
    folder = ensure_writable_dir(Path(out_dir))
    text = build_script(onnx_paths, folder, input_name, min_shape, opt_shape, max_shape)
    path = write_bytes_atomic(folder / SCRIPT_NAME, text.encode())
    path.chmod(path.stat().st_mode | 0o111)
    return path

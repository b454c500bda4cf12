"""What the prepare stage checks before any export, so that bad input never costs an export or leaves a file.

- `check_output_paths(settings, name, detector)`: every file the run may write (see
  `output_paths`) can be written: none is a folder, a pipe or an immutable file, and the
  model's folder can be made and written (the device bundle goes there as a whole).
- `require_values(model, name)`: no parameter or buffer on torch's meta device (shapes
  without values: nothing can be computed, the evidence stage would blame "random ops").
- `require_patterns_can_match(patterns, model)`: each `--keep-fp32` pattern could match a
  label the exported graph's nodes may carry (`attndeploy.precision.policy.node_labels`).
  A label is made of module path segments (TorchScript joins the names along the call
  stack, a shared module keeps its first name, `_1` marks a second call) and op types, so
  every segment of the pattern that stays within one label segment (no `*` or `?`) must
  match a segment of a module path of the deploy model or an ONNX op type: `ChannelGate.mlpp`
  and `*.softmaxx` are refused, `head.block.1` (a shared module called from `head`) is not.
  The precision stage checks the real graph again; this catches the typo before the export.
"""

from __future__ import annotations

import fnmatch
import functools
import itertools
import re
from collections.abc import Sequence
from pathlib import Path

from torch import nn

from attndeploy.errors import require
from attndeploy.fileio import check_output_file
from attndeploy.settings import ExportSettings

ROOT_PATTERN = "<root>"  # the exported module's own nodes: known only once the graph exists


def _rejected(path: Path) -> Path:
    return path.with_name(path.stem + ".rejected.onnx")


def output_paths(settings: ExportSettings, name: str, detector: bool = False) -> list[Path]:
    """The files a run for a model named `name` may write, in the order they are checked.

    The fp32 graph and its `.rejected.onnx` name; for fp16/int8 also `<stem>.<precision>.onnx`
    and its rejected name; `report.json` when written; the engine and its sidecar (`--engine`)
    and the timing cache; the bundle's `build_engine.sh` and `triton/<name>/config.pbtxt` (and
    a detector's `labels.txt`, `metadata.json`) unless `bundle` is off.
    """
    from attndeploy.bundle import LABELS_FILE, METADATA_FILE, SCRIPT_NAME

    graph = settings.resolved_out_path(name)
    graphs = [graph]
    if settings.precision != "fp32":
        graphs.append(graph.with_name(f"{graph.stem}.{settings.precision}.onnx"))
    paths = [p for g in graphs for p in (g, _rejected(g))]
    report = settings.report_path(name)
    if report is not None:
        paths.append(report)
    if settings.engine is not None:
        engine = graphs[-1].with_name(f"{graph.stem}.{settings.precision}.engine")
        paths += [engine, engine.with_name(engine.name + ".json")]
        if settings.engine.timing_cache is not None:
            paths.append(settings.engine.timing_cache)
    if settings.bundle:
        folder = graph.parent
        paths += [folder / SCRIPT_NAME, folder / "triton" / name / "config.pbtxt"]
        paths += [folder / LABELS_FILE, folder / METADATA_FILE] if detector else []
    return paths


def check_output_paths(settings: ExportSettings, name: str, detector: bool = False) -> None:
    """`UsageError` for the first path of `output_paths` that cannot be written; creates nothing."""
    for path in output_paths(settings, name, detector):
        check_output_file(path)


def require_values(model: nn.Module, name: str) -> None:
    """`UsageError` when a parameter or buffer of `model` is on the meta device."""
    empty = [k for k, t in itertools.chain(model.named_parameters(), model.named_buffers()) if t.device.type == "meta"]
    require(not empty, f"{name}'s weights must hold values", "parameters and buffers on the CPU or a GPU",
            f"{len(empty)} on the meta device (first: {empty[0] if empty else ''!r})",
            "model.to_empty(device='cpu'), then load its weights")


@functools.cache
def _op_names() -> frozenset[str]:
    """Every ONNX op type (lower case, as node labels spell it) and the TensorRT plugin's."""
    import onnx

    from attndeploy.lowering.deformconv import PLUGIN_OP

    return frozenset({s.name.lower() for s in onnx.defs.get_all_schemas_with_history()} | {PLUGIN_OP.lower()})


_CALL_SUFFIX = re.compile(r"_\d+$")  # TorchScript's `0_1`: the second call of module `0`
_SPANS_DOTS = re.compile(r"[*?]")  # fnmatch's * and ? also match '.': such a segment may cover several


def _can_match(pattern: str, segments: frozenset[str]) -> bool:
    """Whether every segment of `pattern` that stays within one label segment matches a known segment."""
    if pattern == ROOT_PATTERN:
        return True
    for part in pattern.split("."):
        if _SPANS_DOTS.search(part):
            continue
        plain = _CALL_SUFFIX.sub("", part)
        if not any(fnmatch.fnmatchcase(known, part) or fnmatch.fnmatchcase(known, plain) for known in segments):
            return False
    return True


def require_patterns_can_match(patterns: Sequence[str], model: nn.Module, option: str = "keep_fp32") -> None:
    """`UsageError` for the first pattern no node of `model`'s graph could match (see the module docstring)."""
    paths = [p for p, _ in model.named_modules(remove_duplicate=False) if p]  # a shared module under every name
    segments = frozenset(part for path in paths for part in path.split(".")) | _op_names()
    for pattern in patterns:
        if _can_match(pattern, segments):
            continue
        shown = ", ".join(paths[:12]) + (f" and {len(paths) - 12} more" if len(paths) > 12 else "")
        require(False, f"{option} pattern {pattern!r} matches no module of the model",
                f"a module path pattern, '<module>.<op>' or '<root>' (modules: {shown or 'only the root'})",
                repr(pattern), "module paths as model.named_modules() gives them; '*.softmax' matches an op type")

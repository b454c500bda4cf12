"""Stage `export`: the first exporter that writes a file passing the file checks.

Each planned exporter (`exporting.exporters.plan_exporters`) runs inside the export-time
rewrites and the deform_conv2d lowering; its file is verified at once (`exporting.verify`:
opset, checker, no float64, dynamic axes still dynamic), because a failed check is what
sends the run on to the next exporter. The time of the checks is kept as `verify`.
"""

from __future__ import annotations

import contextlib
import time

import onnx

from attndeploy.errors import CheckFailed, UsageError, first_line
from attndeploy.exporting.exporters import GraphSignature, plan_exporters, run_exporter
from attndeploy.exporting.verify import verify
from attndeploy.fileio import ensure_writable_dir, temp_path
from attndeploy.localise import blame_export_error
from attndeploy.lowering.deformconv import deform_conv_export
from attndeploy.pipeline.state import PipelineState
from attndeploy.rewrites import RewriteLog, export_rewrites


class ExportFailed(CheckFailed):
    """Every exporter that could honour the opset failed on the model."""


def _signature(state: PipelineState, opset: int, extra: dict) -> GraphSignature:
    ranks = tuple(len(state.output_shapes[name]) for name in state.output_names)
    return GraphSignature(opset, state.input_name, tuple(state.dynamic_axes), tuple(state.output_names), ranks,
                          dict(state.output_axes), extra)


def export_graph(state: PipelineState, exporter: str, opset: int) -> onnx.ModelProto:
    """One exporter at `opset`, its file verified; raises what the exporter or the checks raise."""
    settings = state.settings
    assert state.deploy is not None and state.example is not None
    out_path = settings.resolved_out_path(state.name)
    ensure_writable_dir(out_path.parent)
    tmp = temp_path(out_path)
    try:
        rewriting = (export_rewrites(state.example) if settings.rewrites
                     else contextlib.nullcontext(RewriteLog(state.example.dtype, state.example.device)))
        with deform_conv_export(settings.deform_conv, opset, exporter) as extra, rewriting as rewrites:
            warnings = run_exporter(exporter, state.deploy, state.example.clone(), tmp, _signature(state, opset, extra))
        if rewrites.fired:
            state.log(f"export-time rewrites: {rewrites.summary()}")
        start = time.perf_counter()
        proto = onnx.load(str(tmp))
        verify(proto, opset, exporter, state.input_name, state.dynamic_axes)
        state.seconds["verify"] = state.seconds.get("verify", 0.0) + time.perf_counter() - start
    finally:
        tmp.unlink(missing_ok=True)
    state.rewrites = rewrites
    state.warnings += [w for w in warnings if w not in state.warnings]
    return proto


def export(state: PipelineState) -> None:
    settings = state.settings
    failures: list[str] = []
    errors: list[str] = []
    for exporter in plan_exporters(settings.exporter, settings.opset):
        state.log(f"exporting with the {exporter} exporter (opset {settings.opset}, "
                  f"{'dynamic' if state.dynamic_axes else 'static'})")
        try:
            state.proto = export_graph(state, exporter, settings.opset)
        except UsageError:
            raise
        except Exception as err:  # each exporter fails in its own way; all are reported together
            first = first_line(err, 10_000).split(" Please feel free to request support")[0]
            failures.append(f"{exporter}: {first[:300]}")
            errors.append(str(err))
            state.log(f"  {exporter} failed: {first[:200]}")
            continue
        state.exporter = state.route = exporter
        return
    blame = _blame(state, errors)
    raise ExportFailed(f"export failed with every exporter that can write opset {settings.opset}: "
                       + " | ".join(failures) + (f"; {blame}" if blame else ""))


def _blame(state: PipelineState, errors: list[str]) -> str | None:
    """The module that calls the operator an exporter refused, from the first error that names one."""
    assert state.deploy is not None and state.example is not None
    for error in errors:
        blame = blame_export_error(state.deploy, state.example.clone(), error)
        if blame:
            return blame
    return None

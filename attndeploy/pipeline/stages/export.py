"""Stage `export`: the route driver. Each route (`pipeline.routes`) exports, its file is verified, simplified and
judged; the first candidate that passes is the fp32 graph. If none passes, the first judged one stands (written as
`.rejected.onnx`), with what every route did in the notes. If no route can write a file, `ExportFailed` names the
module that calls the operator the exporters refused.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import onnx
from onnx import version_converter

from attndeploy.errors import CheckFailed, UsageError, first_line
from attndeploy.exporting.exporters import GraphSignature, run_exporter
from attndeploy.exporting.output_dims import pin_static_output_dims
from attndeploy.exporting.simplify import SimplifyReport
from attndeploy.exporting.simplify import simplify as simplify_model
from attndeploy.exporting.verify import verify
from attndeploy.fileio import ensure_writable_dir, temp_path
from attndeploy.lint.torch_lint import TorchFinding
from attndeploy.lint.trace_lint import SHAPE_FLOW
from attndeploy.localise import blame_export_error
from attndeploy.lowering.deformconv import PLUGIN_DOMAIN, deform_conv_export, plugin_nodes_to_onnx
from attndeploy.pipeline.candidate import Candidate, Judged
from attndeploy.pipeline.judging import fp32_budget, judge_candidate
from attndeploy.pipeline.model import PreparedModel
from attndeploy.pipeline.routes import Route, fixed_hw_route, plan_routes
from attndeploy.pipeline.run import Run
from attndeploy.rewrites import RewriteLog, export_rewrites
from attndeploy.truth.truth import Truth
from attndeploy.verdict import Budget


class ExportFailed(CheckFailed):
    """Every route that could honour the opset failed to write a file."""


def runnable(proto: onnx.ModelProto) -> bytes:
    """What onnxruntime runs for `proto`: its TensorRT plugin nodes swapped for the equivalent standard ONNX ops."""
    has_plugins = any(n.domain == PLUGIN_DOMAIN for n in proto.graph.node)
    return (plugin_nodes_to_onnx(proto) if has_plugins else proto).SerializeToString()


def export_graph(run: Run, model: PreparedModel, route: Route, axes: tuple[int, ...]
                 ) -> tuple[onnx.ModelProto, list[str], RewriteLog]:
    """`route`'s exporter on the deploy model, its file verified: (graph, exporter warnings, rewrites that fired)."""
    settings = run.settings
    out_path = settings.resolved_out_path(run.name)
    ensure_writable_dir(out_path.parent)
    tmp = temp_path(out_path)
    example = model.example.clone()
    try:
        rewriting = (export_rewrites(example) if settings.rewrites
                     else contextlib.nullcontext(RewriteLog(example.dtype, example.device)))
        with deform_conv_export(settings.deform_conv, route.opset, route.exporter) as extra, rewriting as rewrites:
            signature = GraphSignature(route.opset, model.input_name, axes, tuple(model.output_names),
                                       tuple(len(model.output_shapes[n]) for n in model.output_names),
                                       model.output_axes, extra)
            warnings = run_exporter(route.exporter, model.deploy, example, tmp, signature)
        if rewrites.fired:
            run.log(f"export-time rewrites: {rewrites.summary()}")
        start = time.perf_counter()
        proto = onnx.load(str(tmp))
        verify(proto, route.opset, route.exporter, model.input_name, list(axes))
        if route.upgrade_to:
            proto = version_converter.convert_version(proto, route.upgrade_to)
            verify(proto, route.upgrade_to, f"{route.exporter} (opset {route.opset}, upgraded)", model.input_name,
                   list(axes))
        run.seconds["verify"] = run.seconds.get("verify", 0.0) + time.perf_counter() - start
    finally:
        tmp.unlink(missing_ok=True)
    return proto, warnings, rewrites


def _candidate(run: Run, model: PreparedModel, route: Route, proto: onnx.ModelProto, exported: onnx.ModelProto,
               axes: tuple[int, ...], probes: tuple[tuple[int, ...], ...]) -> Candidate:
    """Output dims the adapter did not declare dynamic (a YOLO's 4 + nc axis) are pinned where the exporter left a
    symbol (`exporting.output_dims`)."""
    if model.family.output_axes and axes:
        for note in pin_static_output_dims(proto, model.output_axes, model.output_shapes):
            run.log(note)
    return Candidate(route.name, route.exporter, "fp32", proto, runnable(proto), run.settings.resolved_out_path(run.name), exported,
                     axes, probes, simplified=proto is not exported)


def _judge_route(run: Run, model: PreparedModel, truth: Truth, route: Route, exported: onnx.ModelProto,
                 budget: Budget, probes: tuple[tuple[int, ...], ...]) -> tuple[Judged, SimplifyReport | None]:
    """The simplified graph judged; where it fails and the unsimplified export passes, the export (onnxsim named)."""
    axes = tuple(truth.dynamic_axes) if route.input_axes is None else route.input_axes
    report = None
    proto = exported
    if run.settings.simplify:
        with run.stage("simplify"):
            proto, report = simplify_model(exported, model.input_name, model.shape)
    judged = judge_candidate(run, model, truth, _candidate(run, model, route, proto, exported, axes, probes), budget)
    if judged.passed or proto is exported:
        return judged, report
    plain = judge_candidate(run, model, truth, _candidate(run, model, route, exported, exported, axes, probes), budget)
    if not plain.passed:
        return judged, report  # the export is wrong too: not onnxsim's doing
    failed = judged.first_failure()
    run.note(f"onnxsim's simplification changed the numbers ({failed.failure_message()[:300] if failed else ''}); "
             "the unsimplified export passes and is kept")
    assert report is not None
    return plain, SimplifyReport(report.nodes_before, report.nodes_before, "original")


def _failing_labels(judged: Judged) -> set[str]:
    return {s.split(" ")[0] for v in judged.verdicts.values() for o in v.outputs for s in o.failing_shapes}


def _wrong_at_other_sizes(judged: Judged, truth: Truth, example: tuple[int, ...]) -> bool:
    """Right at every probe of the example's H, W, wrong or failing at some other H, W."""
    if 2 not in truth.dynamic_axes or len(example) != 4:
        return False
    same = {p.label for p in truth.probes if tuple(p.shape[2:]) == tuple(example[2:])}
    failing = _failing_labels(judged)
    return bool(failing) and failing.isdisjoint(same)


def _fixed_probes(example: tuple[int, ...], axes: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    grown = (example[0] + 1, *example[1:])
    return (example, grown) if 0 in axes else (example,)


def _branch_sites(findings: list[TorchFinding], warnings: list[str]) -> list[str]:
    """Where Python branches on the input's size: the lint's shape-dependent control flow (`call` at `file.py:42`),
    else the tracer's warnings outside attndeploy's own files."""
    sites = [f"{f.call} at {f.site}" if f.site else f.call for f in findings if f.hazard == SHAPE_FLOW]
    own = str(Path(__file__).resolve().parents[2])
    traced = [w.rsplit(" at ", 1)[1] for w in warnings if w.startswith("TracerWarning") and " at " in w]
    return list(dict.fromkeys(sites or [t for t in traced if not t.startswith(own)]))


@dataclass
class RouteRecord:
    """What one route's export left beside its candidate."""

    warnings: list[str]
    rewrites: RewriteLog
    simplify: SimplifyReport | None


@dataclass
class Exported:
    """The fp32 candidate the routes settled on, and each route's record by name."""

    judged: Judged
    records: dict[str, RouteRecord] = field(default_factory=dict)

    @property
    def record(self) -> RouteRecord:
        return self.records[self.judged.candidate.route]


def _attempt(run: Run, model: PreparedModel, truth: Truth, route: Route, probes: tuple[tuple[int, ...], ...],
             failures: list[tuple[str, str]]) -> tuple[Judged, RouteRecord] | None:
    """One route exported, verified, simplified and judged; None (its error in `failures`) where it cannot export."""
    axes = tuple(truth.dynamic_axes) if route.input_axes is None else route.input_axes
    run.log(f"route {route.name} ({'dynamic axes ' + str(list(axes)) if axes else 'static'})")
    try:
        with run.timed("export"):
            proto, warnings, rewrites = export_graph(run, model, route, axes)
    except UsageError:
        raise
    except Exception as err:  # each exporter fails in its own way; all are reported together
        first = first_line(err, 10_000).split(" Please feel free to request support")[0]
        failures.append((f"{route.name}: {first[:300]}", str(err)))
        run.note(f"route {route.name}: cannot export ({first[:200]})")
        return None
    judged, report = _judge_route(run, model, truth, route, proto, fp32_budget(run.settings), probes)
    return judged, RouteRecord(warnings, rewrites, report)


def _blame(model: PreparedModel, errors: list[str]) -> str | None:
    """The module that calls the operator an exporter refused, from the first error that names one."""
    for error in errors:
        blame = blame_export_error(model.deploy, model.example.clone(), error)
        if blame:
            return blame
    return None


def _fixed_note(first: Judged, record: RouteRecord, example: tuple[int, ...], findings: list[TorchFinding]) -> str:
    wrong = sorted(_failing_labels(first))
    sites = _branch_sites(findings, record.warnings)
    where = (f"the branch on the input size: {'; '.join(sites)}" if sites
             else "neither the lint nor the tracer found the branch on the input size")
    return (f"H, W fixed at {example[2]}x{example[3]} with the batch dynamic: the dynamic graph "
            f"({first.candidate.route}) is right at {example[2]}x{example[3]} and wrong or failing at "
            f"{', '.join(wrong)}; {where}")


def export(run: Run, model: PreparedModel, truth: Truth, findings: list[TorchFinding]) -> Exported:
    """The fp32 candidate the routes settle on (see the module docstring); `findings`: the lint's, for the note on a
    branch on the input size."""
    settings, example = run.settings, model.shape
    routes = plan_routes(settings.exporter, settings.opset)
    parity_shapes = tuple(p.shape for p in truth.probes)
    queue: list[tuple[Route, tuple[tuple[int, ...], ...]]] = [(r, parity_shapes) for r in routes]
    failures: list[tuple[str, str]] = []
    done: Exported | None = None
    # H, W fixed only where the sweep was ours: shapes the user asked for must be checked as asked
    fixed = (fixed_hw_route(routes[0], truth.dynamic_axes) if 2 in truth.dynamic_axes and not settings.parity_shapes
             else None)
    while queue:
        route, probes = queue.pop(0)
        try:
            attempt = _attempt(run, model, truth, route, probes, failures)
        except UsageError as err:
            if route is routes[0]:
                raise
            run.note(f"route {route.name}: {first_line(err, 200)}")
            attempt = None
        if attempt is not None:
            judged, record = attempt
            if judged.passed:
                if done is None:
                    if route.fixed_hw:
                        run.note(f"H, W fixed at {example[2]}x{example[3]} with the batch dynamic: no dynamic graph "
                                 f"could be written ({failures[0][0][:200] if failures else 'no route'})")
                    return Exported(judged, {route.name: record})
                run.note(_fixed_note(done.judged, done.record, example, findings) if route.fixed_hw
                         else f"route {route.name}: passed; the graph comes from this route")
                done.records[route.name] = record
                done.judged = judged
                return done
            failed = judged.first_failure()
            why = failed.failure_message() if failed else (judged.task.message if judged.task else "")
            run.note(f"route {route.name}: fails ({why[:200]})")
            if done is None:
                done = Exported(judged, {route.name: record})
            else:
                done.records[route.name] = record
            wanted = _wrong_at_other_sizes(judged, truth, example)
        else:
            wanted = not queue and done is None  # no dynamic graph could be written at all
        if fixed is not None and wanted:
            queue.append((fixed, _fixed_probes(example, fixed.input_axes or ())))
            fixed = None
    if done is None:
        blame = _blame(model, [error for _, error in failures])
        raise ExportFailed(f"export failed with every route that can write opset {settings.opset}: "
                           + " | ".join(line for line, _ in failures) + (f"; {blame}" if blame else ""))
    return done

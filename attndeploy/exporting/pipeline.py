"""`export`: deploy twins in, ONNX out, then verify, simplify and parity-check what was written."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from attndeploy.convert import swap_to_deploy
from attndeploy.errors import CheckFailed, UsageError, first_line, require
from attndeploy.exporting.exporters import (
    dynamic_input_axes,
    plan_exporters,
    run_exporter,
)
from attndeploy.exporting.result import ExportResult
from attndeploy.exporting.simplify import simplify as simplify_model
from attndeploy.exporting.verify import node_counts, verify
from attndeploy.fileio import ensure_writable_dir, temp_path, write_bytes_atomic
from attndeploy.lint.torch_lint import lint_model
from attndeploy.lowering.deform_conv import (
    PLUGIN_DOMAIN,
    deform_conv_export,
    plugin_nodes_to_onnx,
    resolve_deform_lowering,
)
from attndeploy.parity import check_parity, eager_outputs, output_names, random_input
from attndeploy.registry import (
    ModuleSpec,
    Tolerance,
    all_specs,
    create,
    get_spec,
    list_modules,
)
from attndeploy.rewrites import RewriteLog, export_rewrites
from attndeploy.runtimes.onnxruntime_runner import OnnxRuntimeRunner
from attndeploy.shapes import Shape, format_shape, sweep_shapes
from attndeploy.weights import randomize_

INPUT_NAME = "input"
DEFAULT_ONNX_TOL = Tolerance(1e-4, 1e-3)
Log = Callable[[str], None]


class ExportFailed(CheckFailed):
    """Every exporter that could honour the opset failed on the model."""


def _spec_for(model: nn.Module) -> ModuleSpec | None:
    return next((s for s in all_specs() if type(model) is s.reference), None)


def resolve_model(model_or_name: nn.Module | str, seed: int,
                  name: str | None = None) -> tuple[str, nn.Module, ModuleSpec | None]:
    """A registry name gives a fresh reference module with random non-zero weights (see `weights`).

    For a module, `name` (a registry name, or any label) names the result; by default
    the registry name of its class, else the class name.
    """
    if isinstance(model_or_name, nn.Module):
        spec = get_spec(name) if name in list_modules() else _spec_for(model_or_name)
        label = name or (spec.name if spec else type(model_or_name).__name__.lower())
        return label, model_or_name, spec
    spec = get_spec(model_or_name)
    return spec.name, randomize_(create(spec.name), seed), spec


def _example(example: torch.Tensor | Sequence[int] | None, spec: ModuleSpec | None, seed: int) -> torch.Tensor:
    if isinstance(example, torch.Tensor):
        return example.detach().float()
    if example is None:
        if spec is None:
            raise UsageError("an example input is required for a model outside the registry",
                             "a tensor or a shape", "no example_input")
        example = spec.example_shape
    return random_input(tuple(example), seed)


def _export_first_that_works(exporters: list[str], model: nn.Module, x: torch.Tensor, tmp: Path, opset: int,
                             dynamic: bool, outputs: list[np.ndarray], deform_conv: str, rewrites_on: bool,
                             log: Log) -> tuple[str, onnx.ModelProto, list[str], RewriteLog]:
    names = output_names(len(outputs))
    axes = dynamic_input_axes(x.dim()) if dynamic else []
    failures: list[str] = []
    for exporter in exporters:
        log(f"exporting with the {exporter} exporter (opset {opset}, {'dynamic' if dynamic else 'static'})")
        try:
            rewriting = export_rewrites(x) if rewrites_on else contextlib.nullcontext(RewriteLog(x.dtype, x.device))
            with deform_conv_export(deform_conv, opset, exporter) as extra, rewriting as rewrites:
                warnings = run_exporter(exporter, model, x, tmp, opset, dynamic, INPUT_NAME, names,
                                        [o.ndim for o in outputs], extra)
            if rewrites.fired:
                log(f"export-time rewrites: {rewrites.summary()}")
            proto = onnx.load(str(tmp))
            verify(proto, opset, exporter, INPUT_NAME, axes)
            return exporter, proto, warnings, rewrites
        except UsageError:
            raise
        except Exception as err:  # each exporter fails in its own way; all are reported together
            first = first_line(err, 10_000).split(" Please feel free to request support")[0]
            failures.append(f"{exporter}: {first[:300]}")
            log(f"  {exporter} failed: {first[:200]}")
    raise ExportFailed("export failed with every exporter that can write opset "
                       f"{opset}: " + " | ".join(failures))


def export(
    model_or_name: nn.Module | str,
    example_input: torch.Tensor | Sequence[int] | None = None,
    out_path: str | Path | None = None,
    opset: int = 17,
    dynamic: bool = True,
    exporter: str = "auto",
    simplify: bool = True,
    parity_shapes: Sequence[Shape] | None = None,
    seed: int = 0,
    log: Log | None = None,
    name: str | None = None,
    deform_conv: str = "auto",
    rewrites: bool = True,
) -> ExportResult:
    """Export `model_or_name` to ONNX and check the file against eager PyTorch.

    Reference modules are swapped for their deploy twins before export, the model is
    linted for export hazards (`attndeploy.lint.torch_lint`), and hazardous calls in user
    code are routed to exact export-friendly forms while exporting
    (`attndeploy.rewrites`; `rewrites=False` exports the calls as they are); parity compares
    the written graph in onnxruntime with the *original* model's eager outputs on fresh
    random inputs at the example shape and, if `dynamic`, at a sweep of other shapes
    (batch > 1, odd H and W, non-square). A failed parity returns a result with
    `parity.passed == False` and the model written as `<name>.rejected.onnx`.

    `deform_conv` picks how `torchvision::deform_conv2d` is lowered ("auto", "onnx",
    "plugin", "decompose"; see `attndeploy.lowering.deform_conv`). A graph with
    TensorRT plugin nodes is simplified without onnxsim's numeric check (onnxruntime
    cannot run the plugin) and parity-checked with each plugin node swapped for the
    equivalent ONNX `DeformConv`; the file keeps the plugin nodes.
    """
    log = log or (lambda _msg: None)
    times: dict[str, float] = {}
    start = time.perf_counter()
    exporters = plan_exporters(exporter, opset)
    if deform_conv != "auto":
        resolve_deform_lowering(deform_conv, opset)
    name, model, spec = resolve_model(model_or_name, seed, name)
    if spec is not None:
        require(opset >= spec.min_opset, f"{name} needs ops that exist from opset {spec.min_opset}",
                f"opset >= {spec.min_opset}", opset)
    x = _example(example_input, spec, seed)
    shape = tuple(x.shape)
    if spec is not None:
        spec.check_input_shape(shape, getattr(model, "channels", shape[1]))
    out_path = Path(out_path) if out_path is not None else Path("models") / name / f"{name}.onnx"
    ensure_writable_dir(out_path.parent)

    model = model.eval()
    try:
        outputs = eager_outputs(model, x)
    except Exception as err:
        raise UsageError(f"{name} fails in eager mode on the example input", "an input the model accepts",
                         f"{format_shape(shape)}: {first_line(err)}") from err
    deploy, swaps = swap_to_deploy(model)
    log(f"{name}: swapped {len(swaps)} module(s) for deploy twins")
    findings = lint_model(deploy, x)
    for finding in findings:
        log(f"lint: {finding.message()}")

    tmp = temp_path(out_path)
    try:
        used, proto, warnings, rewrite_log = _export_first_that_works(exporters, deploy, x, tmp, opset, dynamic,
                                                                      outputs, deform_conv, rewrites, log)
    finally:
        tmp.unlink(missing_ok=True)
    times["export"] = time.perf_counter() - start

    has_plugins = any(n.domain == PLUGIN_DOMAIN for n in proto.graph.node)
    simplify_report = None
    if simplify:
        log("simplifying with onnxsim" + (" (plugin nodes: numeric check off, nodes left untouched)"
                                          if has_plugins else " (numeric check on)"))
        proto, simplify_report = simplify_model(proto, INPUT_NAME, shape, numeric_check=not has_plugins)
    times["simplify"] = time.perf_counter() - start - sum(times.values())

    data = proto.SerializeToString()
    runnable = plugin_nodes_to_onnx(proto).SerializeToString() if has_plugins else data
    shapes = list(parity_shapes) if parity_shapes else [shape]
    if dynamic and not parity_shapes:
        shapes += sweep_shapes(shape, spec.hw_multiple if spec else 1, spec.min_hw if spec else 1)
    tol = spec.onnx_tol if spec else DEFAULT_ONNX_TOL
    log(f"parity vs eager in onnxruntime at {', '.join(format_shape(s) for s in shapes)}")
    with OnnxRuntimeRunner(runnable) as runner:
        parity = check_parity(model, lambda a: list(runner.infer({INPUT_NAME: a}).values()),
                              runner.output_names, shapes, tol, "onnxruntime-cpu", seed)
    times["parity"] = time.perf_counter() - start - sum(times.values())

    final = out_path if parity.passed else out_path.with_name(out_path.stem + ".rejected.onnx")
    stale = out_path.with_name(out_path.stem + ".rejected.onnx") if parity.passed else out_path
    stale.unlink(missing_ok=True)
    write_bytes_atomic(final, data)
    warnings += [f"lint: {f.message()}" for f in findings if f.rewrite is None]
    return ExportResult(name, final, opset, used, dynamic, shape, parity, swaps, simplify_report,
                        node_counts(proto), warnings, seed, {k: round(v, 3) for k, v in times.items()},
                        rewrite_log.to_dict(), [f.to_dict() for f in findings])

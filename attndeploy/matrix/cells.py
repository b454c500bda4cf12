"""Running matrix cells: each an independent `attndeploy.export` in its own temp dir, then the TRT lint.

A cell is `pass` (exported, verified, simplified, parity passed at the example shape and,
if dynamic, the sweep), `fail` with a short reason (export error, opset mismatch,
onnxsim check, parity at a shape) or `n/a` (the exporter cannot write the opset, the
module needs a higher opset). Passing graphs are linted for each TensorRT version; the
lint's error rules are kept per version. At opsets below 16 DeformConv can only be
written as TensorRT's plugin node, so `auto` falls back to `deform_conv="plugin"` there
and the cell says so (`lowering`).
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from attndeploy.bench.plan import all_cores
from attndeploy.defaults import DYNAMO_MIN_OPSET
from attndeploy.errors import CheckFailed, UsageError, first_line
from attndeploy.lint.trt_lint import ERROR, lint_releases
from attndeploy.matrix.grid import Cell
from attndeploy.pipeline import run_pipeline
from attndeploy.pipeline.result import ExportResult
from attndeploy.quiet import quiet
from attndeploy.registry import get_spec
from attndeploy.settings import ExportSettings


@dataclass
class CellResult:
    """`short`: at most ~32 characters for the Markdown; `detail`: the full reason."""

    cell: Cell
    status: str
    short: str = ""
    detail: str = ""
    lowering: str = ""
    lint: dict[str, list[str]] = field(default_factory=dict)
    lint_detail: dict[str, list[str]] = field(default_factory=dict)
    lint_error: str = ""
    nodes: int | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self.cell), "axes": self.cell.axes, **{k: v for k, v in asdict(self).items() if k != "cell"}}


def classify_export_error(message: str) -> str:
    """A short reason for an `ExportFailed` / checker / onnxsim message (the full text stays in `detail`)."""
    inner = message.split(": ", 1)[1] if message.startswith("export failed with every exporter") else message
    inner = re.sub(r"^(torchscript|dynamo): ", "", inner)
    low = inner.lower()
    op = re.search(r"(aten::\w+|operator '?([\w:.]+)'?)", inner)
    if "internal assert" in low:
        return "exporter internal assert"
    if "data-dependent" in low or "guardondatadependent" in low:
        return "data-dependent shape"
    if "different opset" in low:
        return "opset mismatch"
    if "float64" in low:
        return "float64 tensors"
    if "baked dynamic" in low:
        return "baked dynamic axes"
    if "onnx.checker" in low:
        return "onnx.checker rejects"
    if "onnxsim" in low:
        return "onnxsim numeric check" if "numeric" in low else "onnxsim failed"
    if "unsupported" in low or "not supported" in low or "could not find" in low:
        return f"unsupported {op.group(2) or op.group(1)}"[:32] if op else "unsupported op"
    if op:
        return f"export error ({op.group(2) or op.group(1)})"[:32]
    return "export error"


def _lint(path: Path, versions: tuple[str, ...], result: CellResult) -> None:
    try:
        by_version = lint_releases(path, versions)
    except Exception as err:  # a lint bug must not cost the matrix; the column says so
        result.lint_error = f"lint failed ({first_line(err, with_type=True)})"
        return
    for version in versions:
        findings = [f for f in by_version[version] if f.severity == ERROR]
        rules = sorted({f"{f.rule} {f.op_type}" if f.rule in ("unsupported-op", "custom-op") and f.op_type
                        else f.rule for f in findings})
        result.lint[version] = rules
        result.lint_detail[version] = [f.format() for f in findings]


def _export(cell: Cell, path: Path, deform_conv: str, seed: int) -> ExportResult:
    settings = ExportSettings.create(cell.module, None, path, opset=cell.opset, dynamic=cell.dynamic,
                                     exporter=cell.exporter, seed=seed, deform_conv=deform_conv, bundle=False)
    with quiet():
        return run_pipeline(settings)


def kept_graph(keep: Path, cell: Cell) -> Path:
    """Where `run_cell(..., keep=keep)` leaves a passing cell's graph: `keep/MODULE-EXPORTER-OPSET-AXES.onnx`."""
    return keep / f"{cell.module}-{cell.exporter}-{cell.opset}-{cell.axes}.onnx"


def run_cell(cell: Cell, trt: tuple[str, ...] = (), seed: int = 0, keep: Path | None = None) -> CellResult:
    """Export, check and lint one cell in a temporary directory (removed afterwards; a passing cell's graph is
    copied to `kept_graph(keep, cell)` first where `keep` is given)."""
    start = time.perf_counter()
    spec = get_spec(cell.module)
    result = CellResult(cell, "n/a")
    if cell.exporter == "dynamo" and cell.opset < DYNAMO_MIN_OPSET:
        result.short = result.detail = f"the dynamo exporter writes opset >= {DYNAMO_MIN_OPSET}"
        return result
    if cell.opset < spec.min_opset:
        result.short = result.detail = f"{cell.module} needs opset >= {spec.min_opset}"
        return result
    with tempfile.TemporaryDirectory(prefix="attndeploy-matrix-") as tmp:
        path = Path(tmp) / f"{cell.module}.onnx"
        try:
            try:
                res = _export(cell, path, "auto", seed)
            except UsageError as err:
                if "deform_conv" not in str(err):
                    raise
                result.lowering = "plugin"
                res = _export(cell, path, "plugin", seed)
        except UsageError as err:
            result.status, result.detail = "fail", str(err)
            result.short = "opset mismatch" if "different opset" in str(err) else f"usage: {err.rule}"[:32]
        except CheckFailed as err:  # ExportFailed, onnxsim's check, verify
            result.status, result.detail, result.short = "fail", str(err), classify_export_error(str(err))
        except Exception as err:  # an exporter crash is a result of the cell, not of the matrix
            result.status, result.detail = "fail", f"{type(err).__name__}: {err}"
            result.short = f"crash ({type(err).__name__})"[:32]
        else:
            result.nodes = sum(res.node_counts.values())
            if res.parity.passed:
                result.status = "pass"
                _lint(res.onnx_path, trt, result)
                if keep is not None:
                    shutil.copyfile(res.onnx_path, kept_graph(keep, cell))
            else:
                failing = [s for o in res.parity.outputs for s in o.failing_shapes]
                result.status, result.detail = "fail", res.parity.failure_message()
                result.short = f"parity {failing[0].split(' ')[0]}" if failing else "parity"
    result.seconds = round(time.perf_counter() - start, 2)
    return result


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def run_cells(cells: list[Cell], trt: tuple[str, ...], jobs: int = 1, progress: bool = True,
              seed: int = 0, keep: Path | None = None) -> list[CellResult]:
    """Every cell, in `jobs` processes (spawned; cores shared out between them); results in `cells` order."""
    import sys

    from tqdm import tqdm

    results: dict[int, CellResult] = {}
    with tqdm(total=len(cells), desc="matrix", unit="export", file=sys.stderr, disable=not progress) as bar:
        if jobs <= 1:
            for i, cell in enumerate(cells):
                bar.set_postfix_str(f"{cell.module} {cell.exporter} {cell.opset} {cell.axes}")
                results[i] = run_cell(cell, trt, seed, keep)
                bar.update()
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor, as_completed
            from concurrent.futures.process import BrokenProcessPool

            threads = max(1, all_cores() // jobs)
            with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                                     initializer=_init_worker, initargs=(threads,)) as pool:
                futures = {pool.submit(run_cell, cell, trt, seed, keep): i for i, cell in enumerate(cells)}
                for future in as_completed(futures):
                    i = futures[future]
                    try:
                        results[i] = future.result()
                    except BrokenProcessPool as err:
                        raise RuntimeError("a matrix worker process died (out of memory, or the calling script "
                                           "lacks an `if __name__ == '__main__':` guard); re-run with --jobs 1 "
                                           f"to see the cell that kills it: {err}") from err
                    bar.set_postfix_str(f"{cells[i].module} {cells[i].exporter} {cells[i].opset}")
                    bar.update()
    return [results[i] for i in range(len(cells))]

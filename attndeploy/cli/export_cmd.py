"""`attndeploy export NAME|pkg.module:factory|file.py|--recipe FILE`: export, verify, simplify, parity.

Writes DIR/<name>.onnx and DIR/report.json (DIR defaults to models/<name>/), optionally a
TensorRT engine beside them. The options are those declared in `attndeploy.settings`
(`attndeploy.cli.export_options` makes the flags). Export options and --out given on the command
line override a recipe's; the model's own options (the `model` group: --input, --name, --kwargs,
--weights, --seed) come from the recipe only.

stdout: the table (`result_lines`: one block per graph, lines within 100 columns, the rest in
report.json; `--verbose`: everything, in full), or with `--json` one JSON object. Progress and
the failed checks' full messages go to stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from attndeploy.cli.export_options import (
    MODEL_GROUP,
    add_export_options,
    export_options,
    model_options_given,
    recipe_job,
    settings_from_args,
)
from attndeploy.cli.output import emit, print_json, stderr
from attndeploy.cli.table import WIDTH, common_shapes, fit, fit_lines, verdict_block, verdict_tables, wrap
from attndeploy.errors import UsageError
from attndeploy.pipeline import run_pipeline
from attndeploy.pipeline.result import ExportResult
from attndeploy.recipes import RecipeFailed, load_recipe, run_recipe
from attndeploy.settings import ExportSettings
from attndeploy.verdict import key_label

ROUTE_NOT_TAKEN = re.compile(r"route \S+: fails ")


def add_parser(commands: Any) -> None:
    p = commands.add_parser("export", help="export a module or model to ONNX and check it against eager PyTorch")
    p.add_argument("--recipe", type=Path, default=None, metavar="FILE", help="an export/*.toml recipe")
    shown = p.add_mutually_exclusive_group()  # what stdout carries: one JSON object, or the table in full
    shown.add_argument("--json", action="store_true", help="one JSON object on stdout")
    shown.add_argument("--verbose", action="store_true",
                       help="the whole detail on stdout (every note, full messages, the whole shape rule); "
                            "by default lines fit 100 columns and the rest is in report.json")
    add_export_options(p)  # every option declared in attndeploy.settings, one flag each
    p.set_defaults(run=run)


def _require_tensorrt(jobs: Sequence[ExportSettings]) -> None:
    if any(job.engine is not None for job in jobs):
        from attndeploy.tensorrt._api import require_tensorrt

        require_tensorrt()  # before any work, so a missing TensorRT leaves no files behind


def run(args: argparse.Namespace) -> int:
    if (args.source is None) == (args.recipe is None):
        raise UsageError("export takes one model: NAME or --recipe FILE", "exactly one of them",
                         f"NAME={args.source!r}, --recipe={args.recipe}")
    if args.recipe is not None:
        return _run_recipe(args)
    settings = settings_from_args(args)
    _require_tensorrt([settings])
    return _report(run_pipeline(settings, stderr), args, settings)


def _moved(path: Path | None, folder: Path, per_module: bool) -> Path:
    assert path is not None  # every recipe job names its file
    return folder / path.parent.name / path.name if per_module else folder / path.name


def _run_recipe(args: argparse.Namespace) -> int:
    given = model_options_given(args)
    if given:
        fixed = [str(o.flag) for o in export_options() if o.group == MODEL_GROUP and (o.flag or "").startswith("-")]
        raise UsageError("--recipe takes the model, its files and its seed from the recipe",
                         "no " + ", ".join(fixed), ", ".join(given), "set them in the recipe file")
    recipe = load_recipe(args.recipe)
    jobs = [recipe_job(job, args) for job in recipe.jobs]
    _require_tensorrt(jobs)
    if args.out_dir is not None:  # the recipe's folder moved: DIR/<name>.onnx, or DIR/<name>/<name>.onnx for a [zoo]
        jobs = [job.replace(out_path=_moved(job.out_path, args.out_dir, recipe.kind == "zoo")) for job in jobs]
    recipe = dataclasses.replace(recipe, jobs=tuple(jobs))
    try:
        results = run_recipe(recipe, log=stderr)
    except RecipeFailed as err:
        if args.json and recipe.kind == "zoo":  # the modules that did export keep their reports
            print_json({"recipe": str(recipe.path), "passed": False, "results": [r.to_dict() for r in err.results],
                        "failures": err.failures})
            stderr(f"error: {err}")
            return 1
        raise
    if recipe.kind == "model":
        return _report(results[0], args, recipe.jobs[0])
    passed = all(r.passed for r in results)
    if args.json:  # the one JSON object a [zoo] recipe prints: every module's report
        print_json({"recipe": str(recipe.path), "passed": passed, "results": [r.to_dict() for r in results]})
    return 0 if passed else 1


def _for_stdout(note: str) -> bool:
    """Notes about the result the user got; why a route not taken failed is in report.json only."""
    return not ROUTE_NOT_TAKEN.match(note)


def result_lines(res: ExportResult, report: Path | None = None, verbose: bool = False) -> list[str]:
    """The export's human output: the file, the shape rule and the probes, one block per graph (precision x
    backend) with its task check, the engine's, the notes; lines within `WIDTH` unless `verbose`."""
    def say(text: str, keep_whole: bool = False) -> list[str]:
        return [text] if verbose else wrap(text) if keep_whole else [fit(text, WIDTH)]

    lines = say(f"{res.name}: {res.onnx_path}  (opset {res.opset}, {res.exporter}, "
                f"{'dynamic' if res.dynamic else 'static'}, {sum(res.node_counts.values())} nodes)", keep_whole=True)
    if res.evidence.get("shape_rule"):
        rule = f"shape rule: {res.evidence['shape_rule']}"
        lines += [rule] if verbose else fit_lines(rule, WIDTH, 2)
    verdicts = list(res.parities.values())
    shapes = common_shapes(verdicts)
    inputs = (res.evidence.get("inputs") or {}).get("description")
    if shapes:
        lines += say(f"probes: {', '.join(shapes)}" + (f"; {inputs}" if inputs else ""), keep_whole=True)
    lines += [""] + verdict_tables(verdicts, res.tasks, shapes, verbose)
    engines = list(res.engines.values()) or ([res.engine] if res.engine is not None else [])
    for engine in engines:   # one per graph built into an engine
        checked = engine.parity
        lines += [""] + verdict_block(checked, f"engine {key_label((checked.precision, checked.backend))}", shapes,
                                      verbose)
        lines += say(f"  engine file: {engine.build.engine_path}", keep_whole=True)
        if engine.skipped_shapes:
            lines += say(f"  not run (outside the engine's profile): {', '.join(engine.skipped_shapes)}",
                         keep_whole=True)
    notes = [n for n in res.notes if verbose or _for_stdout(n)]
    lines += ([""] if notes else []) + [x for n in notes for x in say(f"note: {n}")]
    if report is not None:
        keys = ", ".join(f'"{k}"' for k, shown in (("parities", True), ("tasks", res.tasks), ("engine", engines),
                                                    ("engines", len(res.engines) > 1), ("notes", res.notes)) if shown)
        lines += ["", *say(f"full details: {report} ({keys})" + ("" if verbose else ", or run with --verbose"),
                           keep_whole=True)]
    return lines


def print_table(res: ExportResult, report: Path | None = None, verbose: bool = False) -> None:
    for line in result_lines(res, report, verbose):
        emit(line)


def _report(res: ExportResult, args: argparse.Namespace, job: ExportSettings) -> int:
    """Print the result of `job`; exit 1 with one stderr line per failed check (which output, by how much, where)."""
    if args.json:
        print_json(res.to_dict())
    else:
        print_table(res, job.report_path(res.name), args.verbose)
    for key, p in res.parities.items():
        if not p.passed:
            stderr(f"parity failed ({key_label(key)}): {p.failure_message()}")
    for precision, task in res.tasks.items():
        if not task.passed:
            stderr(f"{task.name} check failed ({precision}): {task.message}")
    if res.engine is not None and not res.engine.passed:
        stderr(f"engine parity failed: {res.engine.parity.failure_message() or 'cosine below the fp16 floor'}")
    return 0 if res.passed else 1

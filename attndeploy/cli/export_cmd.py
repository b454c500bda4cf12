"""`attndeploy export NAME|pkg.module:factory|file.py|--recipe FILE`: export, verify, simplify, parity.

Writes DIR/<name>.onnx and DIR/report.json (DIR defaults to models/<name>/), optionally a
TensorRT engine beside them. The options are those declared in `attndeploy.settings`
(`attndeploy.cli.export_options` makes the flags). Export options and --out given on the command
line override a recipe's; the model's own options (the `model` group: --input, --name, --kwargs,
--weights, --seed) come from the recipe only.
"""

from __future__ import annotations

import argparse
import dataclasses
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
from attndeploy.errors import UsageError
from attndeploy.pipeline import run_pipeline
from attndeploy.pipeline.result import ExportResult
from attndeploy.recipes import RecipeFailed, load_recipe, run_recipe
from attndeploy.settings import ExportSettings
from attndeploy.verdict import Verdict, key_label


def add_parser(commands: Any) -> None:
    p = commands.add_parser("export", help="export a module or model to ONNX and check it against eager PyTorch")
    p.add_argument("--recipe", type=Path, default=None, metavar="FILE", help="an export/*.toml recipe")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
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
    return _report(run_pipeline(settings, stderr), args.json)


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
        return _report(results[0], args.json)
    passed = all(r.passed for r in results)
    if args.json:  # the one JSON object a [zoo] recipe prints: every module's report
        print_json({"recipe": str(recipe.path), "passed": passed, "results": [r.to_dict() for r in results]})
    return 0 if passed else 1


def _rule(report: Verdict) -> str:
    strict = " (plain and strict-fp16)" if report.strict is not None else ""
    return report.budget.describe() + strict


def print_table(res: ExportResult) -> None:
    emit(f"{res.name}: {res.onnx_path}  (opset {res.opset}, {res.exporter}, "
         f"{'dynamic' if res.dynamic else 'static'}, {sum(res.node_counts.values())} nodes)")
    if res.evidence.get("shape_rule"):
        emit(f"  shape rule: {res.evidence['shape_rule']}")
    emit(f"  {'output':<12} {'max abs':>10} {'max rel':>10} {'cosine':>10}  {'worst shape':<14} result")
    for key, p in res.parities.items():
        emit(f"  {key_label(key)} vs eager ({_rule(p)}) at {', '.join(p.shapes)}: {'PASSED' if p.passed else 'FAILED'}")
        for o in p.outputs:
            emit(f"  {o.name:<12} {o.max_abs_err:>10.2e} {o.max_rel_err:>10.2e} {o.min_cosine:>10.7f}  "
                 f"{o.worst_shape:<14} {'pass' if o.passed else 'FAIL'}")
    for precision, task in res.tasks.items():
        emit(f"  {task.name} ({precision}): {'PASSED' if task.passed else 'FAILED'}: {task.message}")
    engine = res.engine
    if engine is not None:
        emit(f"  engine {engine.build.engine_path}: parity vs eager ({engine.parity.backend}) at "
             f"{', '.join(engine.parity.shapes)}: {'PASSED' if engine.passed else 'FAILED'}, "
             f"max abs {engine.parity.max_abs_err:.2e}")
    for note in res.notes:
        emit(f"  note: {note}")


def _report(res: ExportResult, as_json: bool) -> int:
    """Print the result; exit 1 with one stderr line per failed check (which output, by how much, where)."""
    if as_json:
        print_json(res.to_dict())
    else:
        print_table(res)
    for key, p in res.parities.items():
        if not p.passed:
            stderr(f"parity failed ({key_label(key)}): {p.failure_message()}")
    for precision, task in res.tasks.items():
        if not task.passed:
            stderr(f"{task.name} check failed ({precision}): {task.message}")
    if res.engine is not None and not res.engine.passed:
        stderr(f"engine parity failed: {res.engine.parity.failure_message() or 'cosine below the fp16 floor'}")
    return 0 if res.passed else 1

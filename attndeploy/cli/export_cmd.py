"""`attndeploy export NAME|pkg.module:factory|file.py|--recipe FILE`: export, verify, simplify, parity.

Writes DIR/<name>.onnx and DIR/report.json (DIR defaults to models/<name>/), optionally a
TensorRT engine beside them. Export options and --out given on the command line override a recipe's; the
model's own options (--input, --name, --kwargs, --weights, --seed) come from the recipe only.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from attndeploy.argparsing import argument_type
from attndeploy.cli.model_source import add_model_arguments
from attndeploy.cli.output import emit, print_json, stderr
from attndeploy.defaults import EXPORTERS
from attndeploy.errors import UsageError
from attndeploy.pipeline import run_pipeline
from attndeploy.pipeline.result import ExportResult
from attndeploy.recipes import RecipeFailed, load_recipe, run_recipe
from attndeploy.settings import DEFORM_CONV_LOWERINGS, EngineSettings, ExportSettings
from attndeploy.shapes import parse_imgsz, parse_shape, parse_shapes
from attndeploy.verdict import Verdict, key_label


def add_parser(commands: Any) -> None:
    p = commands.add_parser("export", help="export a module or model to ONNX and check it against eager PyTorch")
    p.add_argument("source", nargs="?", metavar="NAME", help="a registry name (see `attndeploy list`), "
                   "pkg.module:factory, or path/to/file.py[:factory]")
    p.add_argument("--recipe", type=Path, default=None, metavar="FILE", help="an export/*.toml recipe")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17)")
    p.add_argument("--dynamic", action=argparse.BooleanOptionalAction, default=None,
                   help="dynamic batch, H and W (default) or --static")
    p.add_argument("--static", dest="dynamic", action="store_false", help="same as --no-dynamic")
    add_model_arguments(p)
    p.add_argument("--out", type=Path, default=None, metavar="DIR", help="output folder (default models/<name>/)")
    p.add_argument("--name", default=None, help="name of the files (default: the registry name or factory)")
    p.add_argument("--exporter", default=None, help=f"one of {', '.join(EXPORTERS)} (default auto)")
    p.add_argument("--deform-conv", default=None, metavar="LOWERING",
                   help=f"torchvision deform_conv2d as one of {', '.join(DEFORM_CONV_LOWERINGS)}: auto (onnx at "
                        "opset >= 19, decompose at 16-18), onnx (DeformConv), plugin (TensorRT "
                        "ModulatedDeformConv2d), decompose (GridSample)")
    p.add_argument("--no-rewrites", dest="rewrites", action="store_false", default=None,
                   help="export hazardous calls (adaptive pools, unfold, ...) as they are")
    p.add_argument("--no-simplify", dest="simplify", action="store_false", default=None, help="skip onnxsim")
    family = p.add_argument_group("detectors and other model families")
    family.add_argument("--imgsz", type=argument_type(parse_imgsz), default=None, metavar="S|H,W",
                        help="example image size as ultralytics spells it: 640 or 480,640")
    family.add_argument("--batch", type=int, default=None, help="example batch size (default 1)")
    family.add_argument("--custom-modules", type=Path, default=None, metavar="FILE.py",
                        help="classes a model YAML names, made visible to its parser")
    family.add_argument("--trust-checkpoint", action="store_true", default=None,
                        help="load a pickled checkpoint (an ultralytics best.pt): loading it runs code")
    parity = p.add_argument_group("parity")
    parity.add_argument("--parity-shapes", type=argument_type(parse_shapes), default=None,
                        metavar="NxCxHxW[,NxCxHxW...]", help="check parity at exactly these shapes")
    parity.add_argument("--inputs", type=Path, default=None, metavar="FILE.npy|.npz|DIR",
                        help="parity inputs from your data (images are decoded and resized); default: image-like "
                             "U[0, 1) for 3-channel inputs, N(0, 1) otherwise")
    parity.add_argument("--atol", type=float, default=None, help="absolute tolerance (default: per model)")
    parity.add_argument("--rtol", type=float, default=None, help="relative tolerance (default: per model)")
    precision = p.add_argument_group("reduced precision (verified in onnxruntime against eager fp32)")
    precision.add_argument("--precision", default=None, help="fp32 (default), fp16 or int8")
    precision.add_argument("--calib", type=Path, default=None, metavar="PATH",
                           help="int8 calibration data: (K, C, H, W) .npy/.npz, or a folder of images")
    precision.add_argument("--calib-method", dest="calibration_method", default=None,
                           help="minmax (default), entropy or percentile")
    precision.add_argument("--keep-fp32", default=None, metavar="PATTERNS",
                           help="module paths kept in fp32, e.g. 'model.9.*,*.softmax'")
    precision.add_argument("--int8-target", type=float, default=None, help="output cosine int8 must reach (0.99)")
    precision.add_argument("--int8-flavour", default=None, help="trt (default: TensorRT's Q/DQ) or ort-cpu")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    engine = p.add_argument_group("TensorRT engine (needs TensorRT and an NVIDIA GPU)")
    engine.add_argument("--engine", action="store_true", help="also build a TensorRT engine and check its parity")
    engine.add_argument("--fp16", action="store_true", help="fp16 engine (Softmax, norms, reductions kept fp32)")
    for bound in ("min", "opt", "max"):
        engine.add_argument(f"--{bound}", type=argument_type(parse_shape), default=None, metavar="NxCxHxW",
                            help=f"{bound} shape of the optimization profile (default from the example shape)")
    engine.add_argument("--workspace", type=int, default=2048, metavar="MB", help="builder workspace limit")
    engine.add_argument("--timing-cache", type=Path, default=None, metavar="FILE", help="reused across builds")
    engine.add_argument("--plugin", action="append", default=[], metavar="LIB", help="plugin library to load")
    engine.add_argument("--rebuild", action="store_true", help="ignore a cached engine")
    p.set_defaults(run=run)


# command-line option -> ExportSettings field, for the options whose default is "not given"
_OPTIONS = {"opset": "opset", "dynamic": "dynamic", "exporter": "exporter", "deform_conv": "deform_conv",
            "rewrites": "rewrites", "simplify": "simplify", "parity_shapes": "parity_shapes", "atol": "atol",
            "rtol": "rtol", "inputs": "inputs", "imgsz": "imgsz", "batch": "batch", "custom_modules": "custom_modules",
            "trust_checkpoint": "trust_checkpoint", "precision": "precision", "calib": "calibration",
            "calibration_method": "calibration_method", "keep_fp32": "keep_fp32", "int8_target": "int8_target",
            "int8_flavour": "int8_flavour"}


def _given(args: argparse.Namespace) -> dict[str, Any]:
    options = {field: getattr(args, key) for key, field in _OPTIONS.items() if getattr(args, key) is not None}
    if args.engine:
        options["engine"] = EngineSettings(args.fp16, args.min, args.opt, args.max, args.workspace,
                                           args.timing_cache, tuple(args.plugin), args.rebuild)
    return options


def _settings(args: argparse.Namespace) -> ExportSettings:
    """The model's files go to `--out` (default models/<name>/) as <name>.onnx and report.json, where the name is
    `--name`, else the model's own (a registry name, a YAML's stem, the model a factory builds)."""
    return ExportSettings.create(args.source, args.input, None, name=args.name, out_dir=args.out, report=True,
                                 kwargs=args.kwargs, weights=args.weights, seed=args.seed, **_given(args))


def run(args: argparse.Namespace) -> int:
    if (args.source is None) == (args.recipe is None):
        raise UsageError("export takes one model: NAME or --recipe FILE", "exactly one of them",
                         f"NAME={args.source!r}, --recipe={args.recipe}")
    if args.engine:
        from attndeploy.tensorrt._api import require_tensorrt

        require_tensorrt()  # before any work, so a missing TensorRT leaves no files behind
    if args.recipe is not None:
        return _run_recipe(args)
    return _report(run_pipeline(_settings(args), stderr), args.json)


def _moved(path: Path | None, folder: Path, per_module: bool) -> Path:
    assert path is not None  # every recipe job names its file
    return folder / path.parent.name / path.name if per_module else folder / path.name


def _run_recipe(args: argparse.Namespace) -> int:
    model_options = {"--input": args.input, "--name": args.name, "--kwargs": args.kwargs or None,
                     "--weights": args.weights, "--seed": args.seed or None}
    given = [option for option, value in model_options.items() if value is not None]
    if given:
        raise UsageError("--recipe takes the model, its files and its seed from the recipe",
                         "no " + ", ".join(model_options), ", ".join(given), "set them in the recipe file")
    recipe = load_recipe(args.recipe)
    overrides = _given(args)
    jobs = [job.replace(**overrides) for job in recipe.jobs]
    if args.out is not None:  # the recipe's folder moved: DIR/<name>.onnx, or DIR/<name>/<name>.onnx for a [zoo]
        jobs = [job.replace(out_path=_moved(job.out_path, args.out, recipe.kind == "zoo")) for job in jobs]
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

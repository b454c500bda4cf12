"""`attndeploy export NAME|pkg.module:factory|file.py|--recipe FILE`: export, verify, simplify, parity.

Writes DIR/<name>.onnx and DIR/report.json (DIR defaults to models/<name>/), optionally
a TensorRT engine beside them.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from attndeploy.argparsing import argument_type
from attndeploy.cli.model_source import ModelSource, add_model_arguments, resolve_source
from attndeploy.errors import UsageError
from attndeploy.exporting.exporters import EXPORTERS
from attndeploy.exporting.result import ExportResult
from attndeploy.fileio import write_json_atomic
from attndeploy.shapes import parse_shape


def add_parser(commands: Any) -> None:
    p = commands.add_parser("export", help="export a module or model to ONNX and check it against eager PyTorch")
    p.add_argument("name", nargs="?", help="a registry name (see `attndeploy list`), pkg.module:factory, "
                                           "or path/to/file.py[:factory]")
    p.add_argument("--recipe", type=Path, default=None, metavar="FILE", help="an export/*.toml recipe")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--dynamic", action=argparse.BooleanOptionalAction, default=True,
                   help="dynamic batch, H and W (default) or --static")
    p.add_argument("--static", dest="dynamic", action="store_false", help="same as --no-dynamic")
    add_model_arguments(p)
    p.add_argument("--out", type=Path, default=None, metavar="DIR", help="output folder (default models/<name>/)")
    p.add_argument("--exporter", default="auto", help=f"one of {', '.join(EXPORTERS)}")
    p.add_argument("--deform-conv", default="auto", metavar="LOWERING",
                   help="torchvision deform_conv2d as: auto (onnx at opset >= 19, decompose at 16-18), "
                        "onnx (DeformConv), plugin (TensorRT ModulatedDeformConv2d), decompose (GridSample)")
    p.add_argument("--no-rewrites", dest="rewrites", action="store_false",
                   help="export hazardous calls (adaptive pools, unfold, ...) as they are")
    p.add_argument("--no-simplify", dest="simplify", action="store_false", help="skip onnxsim")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    engine = p.add_argument_group("TensorRT engine (needs TensorRT and an NVIDIA GPU)")
    engine.add_argument("--engine", action="store_true", help="also build a TensorRT engine and check its parity")
    engine.add_argument("--fp16", action="store_true", help="fp16 engine (Softmax, norms, reductions kept fp32)")
    for bound in ("min", "opt", "max"):
        engine.add_argument(f"--{bound}", type=argument_type(parse_shape), default=None, metavar="NxCxHxW",
                            help=f"{bound} shape of the optimization profile (default from the example shape)")
    engine.add_argument("--workspace", type=int, default=None, metavar="MB", help="builder workspace limit")
    engine.add_argument("--timing-cache", type=Path, default=None, metavar="FILE", help="reused across builds")
    engine.add_argument("--plugin", action="append", default=[], metavar="LIB", help="plugin library to load")
    engine.add_argument("--rebuild", action="store_true", help="ignore a cached engine")
    p.set_defaults(run=run)


def print_table(res: ExportResult) -> None:
    p = res.parity
    print(f"{res.name}: {res.onnx_path}  (opset {res.opset}, {res.exporter}, "
          f"{'dynamic' if res.dynamic else 'static'}, {sum(res.node_counts.values())} nodes)")
    print(f"  {'output':<10} {'max abs':>10} {'max rel':>10} {'cosine':>10}  {'worst shape':<14} result")
    for o in p.outputs:
        print(f"  {o.name:<10} {o.max_abs_err:>10.2e} {o.max_rel_err:>10.2e} {o.min_cosine:>10.7f}  "
              f"{o.worst_shape:<14} {'pass' if o.passed else 'FAIL'}")
    print(f"  parity vs eager ({p.backend}, atol {p.tolerance.atol:g}, rtol {p.tolerance.rtol:g}) at "
          f"{', '.join(p.shapes)}: {'PASSED' if p.passed else 'FAILED'}")


def run(args: argparse.Namespace) -> int:
    from attndeploy.cli.output import stderr

    if (args.name is None) == (args.recipe is None):
        raise UsageError("export takes one model: NAME or --recipe FILE", "exactly one of them",
                         f"NAME={args.name!r}, --recipe={args.recipe}")
    if args.engine:
        from attndeploy.tensorrt._api import require_tensorrt

        require_tensorrt()  # before any work, so a missing TensorRT leaves no files behind
    if args.recipe is not None:
        return _run_recipe(args, stderr)
    source = resolve_source(args.name, args.input, args.kwargs, args.weights, args.seed)
    return _export_one(args, source, args.out or Path("models") / source.name, stderr)


def _run_recipe(args: argparse.Namespace, log: Any) -> int:
    from attndeploy.recipes_zoo import ZooRecipe, export_zoo, load_any_recipe

    recipe = load_any_recipe(args.recipe)
    if isinstance(recipe, ZooRecipe):
        results = export_zoo(recipe, log=log)
        return 0 if all(r.passed for r in results) else 1
    for key in ("opset", "dynamic", "exporter"):
        setattr(args, key, getattr(recipe, key))
    args.fp16 = args.fp16 or recipe.precision == "fp16"
    source = resolve_source(recipe.source, recipe.input_shape, recipe.kwargs, recipe.weights, args.seed)
    source.name = recipe.name
    return _export_one(args, source, args.out or recipe.out_dir, log)


def _export_one(args: argparse.Namespace, source: ModelSource, out_dir: Path, log: Any) -> int:
    from attndeploy.cli.output import print_json
    from attndeploy.exporting.pipeline import export

    res = export(source.model, source.example, out_dir / f"{source.name}.onnx", opset=args.opset,
                 dynamic=args.dynamic, name=source.name, exporter=args.exporter, simplify=args.simplify,
                 seed=args.seed, log=log, deform_conv=args.deform_conv, rewrites=args.rewrites)
    report = res.to_dict()
    engine = _build_engine(args, res, source, log) if args.engine and res.parity.passed else None
    if engine is not None:
        report["engine"] = engine.to_dict()
    write_json_atomic(out_dir / "report.json", report)
    if args.json:
        print_json(report)
    else:
        print_table(res)
        if engine is not None:
            print(f"  engine {engine.build.engine_path}: parity vs eager ({engine.parity.backend}) at "
                  f"{', '.join(engine.parity.shapes)}: {'PASSED' if engine.passed else 'FAILED'}, "
                  f"max abs {engine.parity.max_abs_err:.2e}")
    if not res.parity.passed:
        log(f"parity failed: {res.parity.failure_message()}")
        return 1
    if engine is not None and not engine.passed:
        log(f"engine parity failed: {engine.parity.failure_message() or 'cosine below the fp16 floor'}")
        return 1
    return 0


def _build_engine(args: argparse.Namespace, res: ExportResult, source: ModelSource, log: Any) -> Any:
    from attndeploy.tensorrt.builder import DEFAULT_WORKSPACE_MB
    from attndeploy.tensorrt.deploy import engine_for_export

    return engine_for_export(res.onnx_path, source.model, res.input_shape, spec=source.spec, fp16=args.fp16,
                             min=args.min, opt=args.opt, max=args.max, timing_cache=args.timing_cache,
                             workspace_mb=args.workspace or DEFAULT_WORKSPACE_MB, plugins=args.plugin,
                             seed=res.seed, force=args.rebuild, log=log)

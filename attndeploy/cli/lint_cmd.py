"""`attndeploy lint`: an ONNX file against a TensorRT parser, or a PyTorch model before export.

    attndeploy lint MODEL.onnx --trt 8.6|10|11 [--json]
    attndeploy lint NAME|pkg.module:factory|file.py|MODEL.yaml|best.pt [--input NxCxHxW | --imgsz S] [...] [--json]

The pre-export lint names every call that would fail to export, export with baked
shapes, or lose precision, by module path, and the rewrite that handles it. A PyTorch
model is linted by the export pipeline itself, run up to and including its lint stage
(the model prepared as its family's exporter does, a detector's head in export mode), so
its findings are exactly the export's. Exit 0: nothing found, or only what the
export-time rewrites handle; 1: a finding that needs a code change (or, for ONNX, a parser
error); 2: bad usage.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from attndeploy.cli.export_options import add_options
from attndeploy.cli.output import emit, print_json, stderr
from attndeploy.errors import require
from attndeploy.lint.trt_lint import ERROR, WARNING, lint_onnx
from attndeploy.lint.trt_support import TRT_VERSIONS, parser_support
from attndeploy.options import by_name
from attndeploy.reading import require_regular_file
from attndeploy.source_kind import SourceKind, classify_source
from attndeploy.settings import ExportSettings


# the export options that choose and build the model (the same flags as `attndeploy export`)
MODEL_OPTIONS = ("example", "kwargs", "weights", "seed", "imgsz", "batch", "custom_modules", "trust_checkpoint")


def add_parser(commands: Any) -> None:
    p = commands.add_parser("lint", help="TensorRT-readiness of an ONNX file, or export hazards of a PyTorch model")
    p.add_argument("model", help="MODEL.onnx, or a registry name, pkg.module:factory, path/to/file.py[:factory]")
    p.add_argument("--trt", default=None, metavar="VERSION",
                   help=f"for ONNX files: TensorRT generation, one of {', '.join(TRT_VERSIONS)} (default 10)")
    p.add_argument("--jetpack", default=None, metavar="RELEASE",
                   help="for ONNX files: the JetPack release the engine is built on (its exact TensorRT: 6.1, 6.2)")
    add_options(p, MODEL_OPTIONS)
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    options = by_name(ExportSettings)
    model_flags = [str(options[n].flag) for n in MODEL_OPTIONS if getattr(args, n) is not None]
    if classify_source(args.model).kind is SourceKind.ONNX:
        require(not model_flags, "lint of an ONNX file takes --trt only", "MODEL.onnx [--trt VERSION]",
                ", ".join(model_flags), "the model options are for PyTorch models")
        require_regular_file(Path(args.model), "the ONNX model", "a readable .onnx file")  # a pipe would block
        return _lint_onnx(Path(args.model), args.trt or "10", args.json, args.jetpack)
    require(args.trt is None and args.jetpack is None, "--trt and --jetpack are used only with an ONNX file",
            "MODEL.onnx --trt VERSION [--jetpack RELEASE]", f"{'--trt' if args.trt else '--jetpack'} with {args.model!r}")
    return _lint_torch(args)


def _lint_onnx(model: Path, trt: str, as_json: bool, jetpack: str | None = None) -> int:
    """Exit 1 when TensorRT `trt`'s parser would refuse something."""

    support = parser_support(trt)  # an unknown --trt is a UsageError (exit 2) listing the valid ones
    findings = lint_onnx(model, support.key, jetpack=jetpack)
    errors = sum(f.severity == ERROR for f in findings)
    warnings = sum(f.severity == WARNING for f in findings)
    if as_json:
        print_json({"model": str(model), "trt": support.key, "source": support.source,
                    "passed": errors == 0, "errors": errors, "warnings": warnings,
                    "findings": [f.to_dict() for f in findings]})
    else:
        for f in findings:
            emit(f.format())
        verdict = "PASSED" if errors == 0 else "FAILED"
        emit(f"{model}: TensorRT {support.key} lint {verdict} ({errors} error(s), {warnings} warning(s))")
    return 1 if errors else 0


def _lint_torch(args: argparse.Namespace) -> int:
    import tempfile

    from attndeploy.pipeline import lint_findings  # torch: the ONNX lint above runs without it

    given = {n: getattr(args, n) for n in MODEL_OPTIONS if getattr(args, n) is not None}
    example = given.pop("example", None)
    with tempfile.TemporaryDirectory(prefix="attndeploy-lint-") as tmp:  # nothing is written; the path is checked
        settings = ExportSettings.create(args.model, example, None, out_dir=Path(tmp), **given)
        name, shape, findings = lint_findings(settings, stderr)
    unhandled = [f for f in findings if f.rewrite is None]
    if args.json:
        print_json({"model": args.model, "name": name, "input": list(shape), "passed": not unhandled,
                    "findings": [f.to_dict() for f in findings]})
    else:
        for f in findings:
            emit(f.message())
        emit(f"{args.model}: {len(findings)} finding(s), {len(findings) - len(unhandled)} handled by the "
             f"export-time rewrites, {len(unhandled)} needing a code change")
    return 1 if unhandled else 0

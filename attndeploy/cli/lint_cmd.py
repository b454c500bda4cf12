"""`attndeploy lint`: an ONNX file against a TensorRT parser, or a PyTorch model before export.

    attndeploy lint MODEL.onnx --trt 8.6|10|11 [--json]
    attndeploy lint NAME|pkg.module:factory|file.py --input NxCxHxW [--kwargs JSON] [--weights FILE] [--json]

The pre-export lint names every call that would fail to export, export with baked
shapes, or lose precision, by module path, and the rewrite that handles it. Exit 0:
nothing found, or only what the export-time rewrites handle; 1: a finding that needs a
code change (or, for ONNX, a parser error); 2: bad usage.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from attndeploy.cli.model_source import add_model_arguments, resolve_source
from attndeploy.cli.output import emit, print_json
from attndeploy.lint.trt_lint import ERROR, WARNING, lint_onnx
from attndeploy.lint.trt_support import TRT_VERSIONS, parser_support
from attndeploy.usercode import calling_user_code


def add_parser(commands: Any) -> None:
    p = commands.add_parser("lint", help="TensorRT-readiness of an ONNX file, or export hazards of a PyTorch model")
    p.add_argument("model", help="MODEL.onnx, or a registry name, pkg.module:factory, path/to/file.py[:factory]")
    p.add_argument("--trt", default="10", metavar="VERSION",
                   help=f"for ONNX files: TensorRT generation, one of {', '.join(TRT_VERSIONS)} (default 10)")
    add_model_arguments(p)
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.model.endswith(".onnx"):
        return _lint_onnx(Path(args.model), args.trt, args.json)
    return _lint_torch(args)


def _lint_onnx(model: Path, trt: str, as_json: bool) -> int:
    """Exit 1 when TensorRT `trt`'s parser would refuse something."""

    support = parser_support(trt)  # an unknown --trt is a UsageError (exit 2) listing the valid ones
    findings = lint_onnx(model, support.key)
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
    from attndeploy.lint.torch_lint import lint_model  # torch: the ONNX lint above runs without it
    from attndeploy.parity import random_input

    source = resolve_source(args.model, args.input, args.kwargs, args.weights, args.seed)
    with calling_user_code(f"the forward of {args.model!r}"):
        findings = lint_model(source.model.eval(), random_input(source.example, args.seed))
    unhandled = [f for f in findings if f.rewrite is None]
    if args.json:
        print_json({"model": args.model, "input": list(source.example), "passed": not unhandled,
                    "findings": [f.to_dict() for f in findings]})
    else:
        for f in findings:
            emit(f.message())
        emit(f"{args.model}: {len(findings)} finding(s), {len(findings) - len(unhandled)} handled by the "
              f"export-time rewrites, {len(unhandled)} needing a code change")
    return 1 if unhandled else 0

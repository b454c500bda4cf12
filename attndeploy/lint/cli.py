"""`attndeploy lint MODEL.onnx --trt 8.6|10|11 [--json]`: exit 1 when the parser would refuse something.

The command's parser lives in `attndeploy.cli.lint_cmd`, which also lints PyTorch models before export.
"""

from __future__ import annotations

import argparse

EXIT_OK, EXIT_FINDINGS = 0, 1


def run(args: argparse.Namespace) -> int:
    from attndeploy.cli.main import print_json
    from attndeploy.lint.trt_lint import ERROR, WARNING, lint_onnx
    from attndeploy.lint.trt_support import parser_support

    support = parser_support(args.trt)  # an unknown --trt is a UsageError (exit 2) listing the valid ones
    findings = lint_onnx(args.model, support.key)
    errors = sum(f.severity == ERROR for f in findings)
    warnings = sum(f.severity == WARNING for f in findings)
    if args.json:
        print_json({"model": str(args.model), "trt": support.key, "source": support.source,
                    "passed": errors == 0, "errors": errors, "warnings": warnings,
                    "findings": [f.to_dict() for f in findings]})
    else:
        for f in findings:
            print(f.format())
        verdict = "PASSED" if errors == 0 else "FAILED"
        print(f"{args.model}: TensorRT {support.key} lint {verdict} ({errors} error(s), {warnings} warning(s))")
    return EXIT_FINDINGS if errors else EXIT_OK

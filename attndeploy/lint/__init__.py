"""TensorRT readiness checks that need no GPU: `lint_onnx(model, trt="10") -> list[Finding]`."""

from attndeploy.lint.trt_lint import Finding, has_errors, lint_onnx
from attndeploy.lint.trt_support import TRT_VERSIONS, parser_support

__all__ = ["TRT_VERSIONS", "Finding", "has_errors", "lint_onnx", "parser_support"]

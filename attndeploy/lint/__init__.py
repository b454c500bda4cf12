"""TensorRT readiness checks that need no GPU: `lint_onnx(model, trt="10") -> list[Finding]`;
`lint_releases(model, ["8.6", "10", "11"])`: the same for several releases, the model read once."""

from attndeploy.lint.trt_lint import Finding, has_errors, lint_onnx, lint_releases
from attndeploy.lint.trt_support import TRT_VERSIONS, parser_support

__all__ = ["TRT_VERSIONS", "Finding", "has_errors", "lint_onnx", "lint_releases", "parser_support"]

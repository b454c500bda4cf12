"""Localisation: the PyTorch module to blame when a graph is wrong, or when export itself fails.

- `localise_divergence(model, proto, x, input_name, tol) -> Localisation | None`: the first
  module whose output the ONNX graph gets wrong at input `x` (parity failed there).
- `blame_export_error(model, example, message) -> str | None`: the module that calls the
  operator an exporter's error names ("has no ONNX export at opset 17").
"""

from attndeploy.localise.blame import blame_export_error, unsupported_op
from attndeploy.localise.locate import localise_divergence
from attndeploy.localise.report import Localisation

__all__ = ["Localisation", "blame_export_error", "localise_divergence", "unsupported_op"]

"""Localisation: the PyTorch module to blame when a graph is wrong, or when export itself fails.

- `localise_divergence(model, runs, proto, x, input_name, budget) -> Localisation | None`:
  the first module whose output the ONNX graph gets wrong at input `x` (parity failed there);
- `blame_export_error(model, example, message) -> str | None`: the module that calls the
  operator an exporter's error names ("has no ONNX export at opset 17").

The graph side (`graph`, `match`, `divergence`, `report`) needs no torch: `attndeploy verify`
localises on the device from the bundle's module references. This package's names are
imported on first use, so importing `attndeploy.localise.graph` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from attndeploy.localise.blame import blame_export_error, unsupported_op
    from attndeploy.localise.locate import localise_divergence
    from attndeploy.localise.report import Localisation

_HOME = {"blame_export_error": "blame", "unsupported_op": "blame", "localise_divergence": "locate",
         "Localisation": "report"}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'attndeploy.localise' has no attribute {name!r}")
    return getattr(importlib.import_module(f"attndeploy.localise.{_HOME[name]}"), name)


__all__ = ["Localisation", "blame_export_error", "localise_divergence", "unsupported_op"]

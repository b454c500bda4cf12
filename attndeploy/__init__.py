"""attndeploy: attention modules to ONNX and TensorRT, with the evidence that they still compute the same thing.

    >>> import attndeploy
    >>> attndeploy.list_modules()[:3]
    ['acmix', 'cbam', 'coordatt']

The public names below are imported on first use (PEP 562), so `import attndeploy` (and the
CLI's start, which installs its signal handlers first) does not wait for torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from attndeploy.version import __version__

if TYPE_CHECKING:
    from attndeploy.convert import Swap, swap_to_deploy, to_deploy
    from attndeploy.errors import CheckFailed, UsageError
    from attndeploy.pipeline import export
    from attndeploy.pipeline.result import ExportResult
    from attndeploy.registry import (
        ModuleSpec,
        Tolerance,
        create,
        get_spec,
        list_modules,
    )
    from attndeploy.settings import EngineSettings, ExportSettings
    from attndeploy.weights import randomize_

_HOMES = {
    "Swap": "attndeploy.convert", "swap_to_deploy": "attndeploy.convert", "to_deploy": "attndeploy.convert",
    "CheckFailed": "attndeploy.errors", "UsageError": "attndeploy.errors",
    "export": "attndeploy.pipeline", "ExportResult": "attndeploy.pipeline.result",
    "ModuleSpec": "attndeploy.registry", "Tolerance": "attndeploy.registry", "create": "attndeploy.registry",
    "get_spec": "attndeploy.registry", "list_modules": "attndeploy.registry",
    "EngineSettings": "attndeploy.settings", "ExportSettings": "attndeploy.settings",
    "randomize_": "attndeploy.weights",
}

__all__ = [
    "CheckFailed", "EngineSettings", "ExportResult", "ExportSettings", "ModuleSpec", "Swap", "Tolerance", "UsageError",
    "__version__", "create", "export", "get_spec", "list_modules", "randomize_", "swap_to_deploy", "to_deploy",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'attndeploy' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

"""attndeploy: attention modules to ONNX and TensorRT, with the evidence that they still compute the same thing.

    >>> import attndeploy
    >>> attndeploy.list_modules()[:3]
    ['acmix', 'cbam', 'coordatt']
"""

from attndeploy.convert import Swap, swap_to_deploy, to_deploy
from attndeploy.errors import CheckFailed, UsageError
from attndeploy.exporting.pipeline import export
from attndeploy.exporting.result import ExportResult
from attndeploy.registry import ModuleSpec, Tolerance, create, get_spec, list_modules
from attndeploy.weights import randomize_

__all__ = [
    "CheckFailed", "ExportResult", "ModuleSpec", "Swap", "Tolerance", "UsageError", "create", "export",
    "get_spec", "list_modules", "randomize_", "swap_to_deploy", "to_deploy",
]
__version__ = "0.1.0"

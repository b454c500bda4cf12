"""Submodules kept in plain Python lists, tuples, dicts or sets instead of nn.ModuleList / nn.ModuleDict.

PyTorch only registers submodules assigned as attributes or held in its containers. A
module in a plain list is invisible to `state_dict()`, `.to()`, `.eval()` and
`named_modules()`: a checkpoint cannot load its weights, and the exporters see its
parameters as plain tensors and write them as constants. A module held in a plain list that
is *also* registered elsewhere (``self.convs = [self.conv1, self.conv2]``) is fine.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from typing import Any

from torch import nn

from attndeploy.lint.findings import WEIGHTS, TorchFinding

HAZARD = "plain container of modules"
_CONTAINERS = (list, tuple, dict, set)


def _modules_in(value: Any, depth: int = 2) -> list[nn.Module]:
    items = value.values() if isinstance(value, dict) else value
    found: list[nn.Module] = []
    for item in items:
        if isinstance(item, nn.Module):
            found.append(item)
        elif depth > 1 and isinstance(item, _CONTAINERS):
            found.extend(_modules_in(item, depth - 1))
    return found


def attribute_site(cls: type, attr: str) -> str:
    """``file:line`` of the first ``self.<attr> = ...`` in the class's ``__init__`` (its MRO's), or ""."""
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass.__module__.startswith("torch."):
            continue
        try:
            lines, first = inspect.getsourcelines(init)
            file = inspect.getsourcefile(init) or ""
            tree = ast.parse(textwrap.dedent("".join(lines)))
        except (OSError, TypeError, SyntaxError):
            continue
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Assign, ast.AnnAssign)):
                continue
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                if isinstance(target, ast.Attribute) and target.attr == attr and \
                        isinstance(target.value, ast.Name) and target.value.id == "self":
                    return f"{file}:{first + node.lineno - 1}"
    return ""


def plain_containers(model: nn.Module) -> list[TorchFinding]:
    """One finding per attribute holding modules that `model.named_modules()` does not reach."""
    registered = {id(m) for m in model.modules()}
    findings = []
    for path, module in model.named_modules():
        for attr, value in vars(module).items():
            if attr.startswith("_") or not isinstance(value, _CONTAINERS):
                continue
            hidden = [m for m in _modules_in(value) if id(m) not in registered]
            if not hidden:
                continue
            kind = type(value).__name__
            holder = "nn.ModuleDict" if isinstance(value, dict) else "nn.ModuleList"
            params = sum(p.numel() for m in hidden for p in m.parameters())
            kinds = ", ".join(dict.fromkeys(type(m).__name__ for m in hidden))
            findings.append(TorchFinding(
                path, HAZARD, f"{attr}: a plain {kind} of {len(hidden)} module(s) ({kinds}; {params} parameters)",
                f"{WEIGHTS}: .to()/.eval()/state_dict() never see them and the exporters write their weights "
                "as constants", None, f"hold them in {holder} (or nn.Sequential)",
                attribute_site(type(module), attr)))
    return findings


__all__ = ["HAZARD", "attribute_site", "plain_containers"]

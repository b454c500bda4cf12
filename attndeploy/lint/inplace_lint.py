"""In-place writes into a forward's input, seen as version-counter bumps across each module's call.

Every tensor has a `_version` that each in-place write bumps (a view shares its base's).
`InputWrites` records the versions of a module's tensor arguments when its forward starts
and compares them when it ends. A bump is reported at the innermost module that made it
(a parent is reported only for the writes its children did not make), except a torch.nn
module (``nn.ReLU(inplace=True)``, ...) writing into an intermediate tensor: the common
idiom, harmless for export, reported only when the tensor is the model's own input.

The model's input is written when the caller's tensor changes: eager runs after it see
other values, and so does any comparison that reuses it. A user module writing into its
input changes its caller's tensor (a residual or a second use reads the written values),
and the exporters turn the write into copies whose order TorchScript can get wrong.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn
from torch.utils._pytree import tree_flatten

from attndeploy.lint.findings import TorchFinding
from attndeploy.modulepath import forward_site

HAZARD = "in-place write into the input"
CONSEQUENCE = ("changes the caller's tensor: a residual or second use reads the written values, and the graph "
               "(which copies instead) can disagree with eager")
HINT = "write into a new tensor (y = x.clone(); y[...] = ...) or use out-of-place ops (x = x * s, torch.cat)"


def _tensors(value: Any) -> list[Tensor]:
    return [t for t in tree_flatten(value)[0] if isinstance(t, Tensor) and not t.is_inference()]


def _covered(ranges: list[tuple[int, int]]) -> int:
    """How many versions the half-open ranges (a, b] cover together."""
    total, end = 0, -1
    for a, b in sorted(ranges):
        start = max(a, end)
        if b > start:
            total += b - start
            end = b
    return total


class InputWrites:
    """`ModuleStack` callbacks that find in-place writes into forward inputs (see the module docstring)."""

    def __init__(self, model_input: Tensor) -> None:
        self.model_input = model_input
        self.calls: list[list[tuple[Tensor, int]]] = []
        self.claimed: dict[int, list[tuple[int, int]]] = {}   # id(tensor) -> version ranges (v0, v1] of inner calls
        self.sites: dict[int, str] = {}              # id(tensor) -> file:line of its last in-place write seen
        self.found: list[TorchFinding] = []

    def note_write(self, tensor: Any, site: str) -> None:
        """Called by the function-mode linter for every in-place call (``add_``, ``__setitem__`` ...)."""
        if isinstance(tensor, Tensor) and site:
            self.sites[id(tensor)] = site

    def on_enter(self, path: str, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.calls.append([(t, t._version) for t in _tensors((args, kwargs))])

    def _is_model_input(self, t: Tensor) -> bool:
        return t is self.model_input or (t._base is not None and t._base is self.model_input)

    def on_leave(self, path: str, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any],
                 output: Any) -> None:
        before = self.calls.pop() if self.calls else []
        builtin = type(module).__module__.startswith("torch.")
        for position, (t, version) in enumerate(before):
            now = t._version
            if now == version:
                continue
            inner = [(a, b) for a, b in self.claimed.get(id(t), []) if version <= a and b <= now]
            own = (now - version) - _covered(inner)
            self.claimed[id(t)] = [r for r in self.claimed.get(id(t), []) if r not in inner] + [(version, now)]
            if own <= 0:
                continue  # every write was made by a module this one called
            model_input = self._is_model_input(t)
            if builtin and not model_input:
                continue
            what = "the model's input" if model_input else f"its input #{position}"
            file, line = forward_site(type(module))
            site = self.sites.get(id(t)) or (f"{file}:{line}" if file else "")
            self.found.append(TorchFinding(path, HAZARD, f"{type(module).__name__}.forward writes into {what} "
                                           f"{tuple(t.shape)}", CONSEQUENCE, None, HINT, site))


__all__ = ["CONSEQUENCE", "HAZARD", "HINT", "InputWrites"]

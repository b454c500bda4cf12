"""Every module's inputs and outputs in one eager run, in execution order (localisation, determinism).

`record_events(model, x)` runs `model(x)` once (no grad) with hooks on every module and
returns one `Event` per module entry ("in": the floating-point tensors passed to it) and
exit ("out": the floating-point tensors it returned), in the order they happened. Each
event names its `owner`: the module to blame if this event is the first to diverge — the
module itself for "out" (its children's events came earlier and matched), the caller for
"in" (the divergence arose in the caller's own code before the call).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_flatten

from attndeploy.events import Event
from attndeploy.modulepath import ModuleStack


@dataclass
class EagerRun:
    """The events of one run, the modules by path, and the model's outputs (float32 numpy)."""

    events: list[Event]
    modules: dict[str, nn.Module]
    outputs: list[np.ndarray]

    @property
    def calls(self) -> set[tuple[str, str]]:
        """(caller path, callee path) of every module call."""
        return {(e.owner, e.path) for e in self.events if e.kind == "in"}


def float_arrays(value: Any) -> list[np.ndarray]:
    """The floating-point tensors in `value` (any nesting), as numpy copies: float64 stays float64, others float32."""
    return [t.detach().to("cpu", torch.float64 if t.dtype == torch.float64 else torch.float32).numpy().copy()
            for t in tree_flatten(value)[0] if isinstance(t, Tensor) and t.is_floating_point()]


def record_events(model: nn.Module, x: Tensor) -> EagerRun:
    """Run `model(x)` (eval, no grad) and record every module's float inputs and outputs.

    `x`: the model input (N, C, H, W) or any shape the model takes (float64 for a float64
    copy of the model: its events stay float64). The model's training flag is restored afterwards.
    """
    events: list[Event] = []

    def enter(path: str, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if path:  # the root's input is the graph input
            events.append(Event(len(events), "in", path, stack.parent, float_arrays((args, kwargs))))

    def leave(path: str, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        events.append(Event(len(events), "out", path, path, float_arrays(output)))

    stack = ModuleStack(model, enter, leave)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), stack:
            out = model(x)
    finally:
        model.train(was_training)
    return EagerRun(events, stack.modules, float_arrays(out))


__all__ = ["EagerRun", "Event", "float_arrays", "record_events"]

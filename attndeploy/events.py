"""`Event`: one module entry or exit of an eager run, with its floating-point tensors, in plain numpy (no torch).

Recorded by `attndeploy.module_events.record_events` (which runs the model), compared with a
graph's tensors by `attndeploy.localise.match`, and carried to the device by the bundle's
module references (`attndeploy.bundle.references`), where `attndeploy verify` localises without torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Event:
    """One module entry or exit: `tensors` are numpy copies (float32; float64 in a float64 run)."""

    index: int
    kind: str                 # "in" | "out"
    path: str                 # the module entered or left
    owner: str                # the module to blame if this event diverges first
    tensors: list[np.ndarray] = field(default_factory=list)


__all__ = ["Event"]

"""The truth: what the eager model computes, produced once per export and read by everything that judges.

- `eager`: `EagerModel`, the only runner of the user's model for reference (fp32, its
  float64 copy, one thread, module by module);
- `truth`: `Truth`, the probes (inputs with eager fp32 and float64 outputs), the shape rule,
  the family's task inputs with their eager outputs, module-boundary runs on demand;
- `determinism`: the gate before any verdict (the eager output must not move);
- `truth_for`: the truth of a model at given shapes outside a pipeline run (tests, tools).

Parity, the precision searches, the task check, localisation and the device bundle read
the `Truth`; nothing else runs the eager model for reference (`tests/test_truth.py`).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from attndeploy.parity.inputs import random_input
from attndeploy.shapes import Shape
from attndeploy.truth.eager import EagerModel, MakeInput
from attndeploy.truth.truth import Truth
from attndeploy.verdict import TruthData


def truth_for(model: nn.Module, shapes: Sequence[Shape], seed: int = 0, make_input: MakeInput = random_input,
              input_name: str = "input") -> TruthData:
    """The truth of `model` (eval mode) at `shapes`, outside a pipeline run (a one-off judgement, tests, tools)."""
    eager = EagerModel(model.eval(), make_input, seed)
    first = eager.fp32_at(tuple(shapes[0]))
    truth = Truth(eager, input_name, list(first))
    truth.probes = [truth.probe(tuple(s)) for s in shapes]
    return truth.data()


__all__ = ["truth_for"]

"""`PreparedModel`: what the prepare stage hands on — the model to export, its eager runner and its interface."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from attndeploy.adapters.base import Prepared
from attndeploy.convert import Swap
from attndeploy.parity.inputs import InputPlan
from attndeploy.shapes import Shape
from attndeploy.spec import ModuleSpec
from attndeploy.truth.eager import EagerModel


@dataclass
class PreparedModel:
    """`eager` runs the private eval-mode copy of the user's model (the truth); `deploy` is a second copy with the
    deploy twins swapped in (what is exported). Output names are the graph's, in the eager outputs' order;
    `output_axes[name]`: that output's dynamic dims (absent: every dim)."""

    name: str
    spec: ModuleSpec | None
    family: Prepared
    eager: EagerModel
    deploy: nn.Module
    example: torch.Tensor
    inputs: InputPlan
    output_names: list[str]
    output_shapes: dict[str, Shape]
    swaps: list[Swap] = field(default_factory=list)

    @property
    def shape(self) -> Shape:
        return tuple(self.example.shape)

    @property
    def input_name(self) -> str:
        return self.family.input_name

    @property
    def output_axes(self) -> dict[str, tuple[int, ...]]:
        return dict(self.family.output_axes)


__all__ = ["PreparedModel"]

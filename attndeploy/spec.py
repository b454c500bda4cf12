"""`ModuleSpec`: everything the toolkit knows about one registry name (a leaf module).

The registrations themselves, and the lookups, are in `attndeploy.registry`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from attndeploy.defaults import DEPLOY_TOL, MIN_OPSET, ONNX_TOL, Tolerance
from attndeploy.errors import require
from attndeploy.parity.shape_rules import ShapeRule
from attndeploy.shapes import Shape


@dataclass(frozen=True)
class ModuleSpec:
    """Everything the toolkit knows about one registry name.

    `reference` and `deploy` are the family's two classes (`attndeploy/families/<family>.py`).
    `example_shape` is the default (N, C, H, W) that `create(name)` accepts. `hw_multiple`
    and `min_hw` bound the spatial sizes the module accepts (SPD needs even H and W,
    ACmix's reflection padding needs H, W > its pad). (torchvision's `deform_conv2d` is lowered
    at export wherever it occurs, registry module or not: `attndeploy.lowering.deformconv`.)
    """

    name: str
    reference: type[nn.Module]
    deploy: type[nn.Module]
    example_shape: Shape
    paper: str
    defaults: dict[str, Any] = field(default_factory=dict)
    deploy_tol: Tolerance = DEPLOY_TOL
    onnx_tol: Tolerance = ONNX_TOL
    min_opset: int = MIN_OPSET
    hw_multiple: int = 1
    min_hw: int = 1

    @property
    def rule(self) -> ShapeRule:
        """The H, W rule the module declares (`hw_multiple`, `min_hw`)."""
        return ShapeRule(self.hw_multiple, self.min_hw)

    def sweep_shapes(self) -> list[Shape]:
        """The shapes other than the example that parity checks (see `ShapeRule.sweep`)."""
        return self.rule.sweep(self.example_shape)

    def parity_shapes(self) -> list[Shape]:
        """The example shape, then `sweep_shapes()`."""
        return [tuple(self.example_shape), *self.sweep_shapes()]

    def check_input_shape(self, shape: Shape, channels: int) -> None:
        """Raise `UsageError` unless `shape` is (N, `channels`, H, W) within the module's H, W rules."""
        require(len(shape) == 4, f"{self.name} input must be 4-D (N, C, H, W)", "rank 4", f"rank {len(shape)} {shape}")
        require(shape[1] == channels, f"{self.name} input channels must equal the module's channels",
                channels, f"{shape[1]} in {shape}")
        for axis, size in zip("HW", shape[2:]):
            require(size >= self.min_hw, f"{self.name} needs {axis} >= {self.min_hw}", f">= {self.min_hw}",
                    f"{axis}={size} in {shape}")
            require(size % self.hw_multiple == 0, f"{self.name} needs {axis} divisible by {self.hw_multiple}",
                    f"a multiple of {self.hw_multiple}", f"{axis}={size} in {shape}")

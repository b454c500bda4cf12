"""The registry: one `ModuleSpec` per name ties a reference module to its deploy twin.

A new module is its reference file, its deploy file and one `ModuleSpec` in
`attndeploy/zoo.py`; the tests iterate the registry, so it is tested without new tests.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from attndeploy.errors import UsageError, require, unknown_name
from attndeploy.shapes import Shape, sweep_shapes


@dataclass(frozen=True)
class Tolerance:
    """An element fails only if it exceeds both `atol` and `rtol * |reference|`."""

    atol: float
    rtol: float


@dataclass(frozen=True)
class ModuleSpec:
    """Everything the toolkit knows about one registry name.

    `example_shape` is the default (N, C, H, W) that `create(name)` accepts. `hw_multiple`
    and `min_hw` bound the spatial sizes the module accepts (SPD needs even H and W,
    ACmix's reflection padding needs H, W > its pad).
    """

    name: str
    reference: type[nn.Module]
    deploy: type[nn.Module]
    example_shape: Shape
    paper: str
    defaults: dict[str, Any] = field(default_factory=dict)
    deploy_tol: Tolerance = Tolerance(1e-5, 1e-4)
    onnx_tol: Tolerance = Tolerance(1e-4, 1e-3)
    min_opset: int = 13
    hw_multiple: int = 1
    min_hw: int = 1

    def sweep_shapes(self) -> list[Shape]:
        """Three shapes other than the example: batch > 1, odd H and W, non-square (see `shapes.sweep_shapes`)."""
        return sweep_shapes(self.example_shape, self.hw_multiple, self.min_hw)

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


_REGISTRY: dict[str, ModuleSpec] = {}


def register(spec: ModuleSpec) -> ModuleSpec:
    """Add `spec`; a name can be registered once."""
    if spec.name in _REGISTRY:
        raise ValueError(f"registry name {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def _load() -> dict[str, ModuleSpec]:
    import attndeploy.zoo  # noqa: F401  (registers every family)

    return _REGISTRY


def list_modules() -> list[str]:
    """Registry names, sorted."""
    return sorted(_load())


def get_spec(name: str) -> ModuleSpec:
    """The `ModuleSpec` for `name`; an unknown name lists the valid ones and suggests the closest."""
    registry = _load()
    if name not in registry:
        raise unknown_name("module", name, registry)
    return registry[name]


def all_specs() -> list[ModuleSpec]:
    return [get_spec(name) for name in list_modules()]


def init_kwargs(module: nn.Module) -> dict[str, Any]:
    """The constructor arguments of a zoo module, read back from the same-named attributes."""
    params = inspect.signature(type(module).__init__).parameters
    return {p: getattr(module, p) for p in params if p != "self"}


def create(name: str, **kwargs: Any) -> nn.Module:
    """A reference module for `name`, built from the spec's defaults updated with `kwargs`."""
    spec = get_spec(name)
    params = [p for p in inspect.signature(spec.reference.__init__).parameters if p != "self"]
    for key in kwargs:
        if key not in params:
            raise unknown_name(f"argument of {name}", key, params)
    try:
        return spec.reference(**{**spec.defaults, **kwargs})
    except TypeError as err:
        raise UsageError(f"cannot build {name}", f"arguments among {params}", str(err)) from err

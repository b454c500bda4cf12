"""`to_deploy`: swap every registered reference module in a model for its deploy twin."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from attndeploy.copying import private_copy
from attndeploy.errors import require
from attndeploy.registry import all_specs, init_kwargs


@dataclass(frozen=True)
class Swap:
    """One replaced module: its path in the model ('' for the root) and both class names."""

    path: str
    reference: str
    deploy: str


def _twin_classes() -> dict[type[nn.Module], type[nn.Module]]:
    return {spec.reference: spec.deploy for spec in all_specs()}


def _twin_of(module: nn.Module, deploy_cls: type[nn.Module]) -> nn.Module:
    twin = deploy_cls(**init_kwargs(module))
    twin.load_state_dict(module.state_dict(), strict=True)
    twin.train(module.training)
    for key, value in vars(module).items():  # what a host framework set on the layer (ultralytics' f, i, type)
        if not key.startswith("_") and key not in vars(twin):
            setattr(twin, key, value)
    param = next(module.parameters(), None)
    return twin if param is None else twin.to(device=param.device, dtype=param.dtype)


def swap_to_deploy(model: nn.Module, inplace: bool = False) -> tuple[nn.Module, list[Swap]]:
    """Return `model` with each reference module (exact class match) replaced by its twin.

    Subclasses of reference classes are left alone: their forward may differ. The
    model is copied first (`copying.private_copy`) unless `inplace`.
    """
    require(isinstance(model, nn.Module), "to_deploy takes a PyTorch model", "an nn.Module",
            f"{model!r}"[:100] + f" ({type(model).__name__})",
            "attndeploy.create(name) builds a registry module" if isinstance(model, str) else "")
    twins = _twin_classes()
    if not inplace:
        model = private_copy(model)
    swaps: list[Swap] = []

    def visit(module: nn.Module, path: str) -> nn.Module:
        deploy_cls = twins.get(type(module))
        if deploy_cls is not None:
            swaps.append(Swap(path, type(module).__name__, deploy_cls.__name__))
            return _twin_of(module, deploy_cls)
        for name, child in list(module.named_children()):
            replaced = visit(child, f"{path}.{name}" if path else name)
            if replaced is not child:
                setattr(module, name, replaced)
        return module

    return visit(model, ""), swaps


def to_deploy(model: nn.Module, inplace: bool = False) -> nn.Module:
    """The model with deploy twins swapped in (see `swap_to_deploy` for the list of swaps)."""
    return swap_to_deploy(model, inplace=inplace)[0]

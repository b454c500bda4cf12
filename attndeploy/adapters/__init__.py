"""Model-family adapters (see `attndeploy.adapters.base`); `adapter_for(model)` picks one by the model's type."""

from __future__ import annotations

from torch import nn

from attndeploy.adapters.base import Adapter, PlainAdapter, Prepared
from attndeploy.adapters.ultralytics import UltralyticsAdapter

ADAPTERS: tuple[Adapter, ...] = (UltralyticsAdapter(),)


def adapter_for(model: nn.Module) -> Adapter:
    """The first adapter in `ADAPTERS` that claims `model`, else `PlainAdapter`."""
    return next((a for a in ADAPTERS if a.matches(model)), PlainAdapter())


__all__ = ["ADAPTERS", "Adapter", "PlainAdapter", "Prepared", "adapter_for"]

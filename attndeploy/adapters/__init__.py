"""Model-family adapters (see `attndeploy.adapters.base`); `adapter_for(model)` picks one by the model's type."""

from __future__ import annotations

from torch import nn

from attndeploy.adapters.base import Adapter, PlainAdapter, Prepared
from attndeploy.adapters.ultralytics import UltralyticsAdapter
from attndeploy.lint.findings import TorchFinding

ADAPTERS: tuple[Adapter, ...] = (UltralyticsAdapter(),)


def adapter_for(model: nn.Module) -> Adapter:
    """The first adapter in `ADAPTERS` that claims `model`, else `PlainAdapter`."""
    return next((a for a in ADAPTERS if a.matches(model)), PlainAdapter())


def refine_findings(model: nn.Module, findings: list[TorchFinding]) -> list[TorchFinding]:
    """`findings` as every family states them about its layers in `model` (wrapped or not)."""
    for adapter in ADAPTERS:
        findings = adapter.refine_findings(model, findings)
    return findings


__all__ = ["ADAPTERS", "Adapter", "PlainAdapter", "Prepared", "adapter_for", "refine_findings"]

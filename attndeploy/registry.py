"""The registry: one `ModuleSpec` per name ties a family's reference module to its deploy twin.

A new module is its family file (`attndeploy/families/<family>.py`: reference, then
twin), one `register(ModuleSpec(...))` line below and its test; the registry-driven tests
(twin parity, ONNX parity, CLI) cover it without new test code.
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from attndeploy.defaults import Tolerance
from attndeploy.errors import UsageError, unknown_name
from attndeploy.families.acmix import ACmix, ACmixDeploy
from attndeploy.families.cbam import CBAM, CBAMDeploy
from attndeploy.families.coordatt import CoordAtt, CoordAttDeploy
from attndeploy.families.deformconv import DeformConvBlock, DeformConvBlockDeploy
from attndeploy.families.eca import ECA, ECADeploy
from attndeploy.families.gc import ContextBlock, ContextBlockDeploy
from attndeploy.families.mlca import MLCA, MLCADeploy
from attndeploy.families.nonlocal_block import NonLocalBlock, NonLocalBlockDeploy
from attndeploy.families.scse import SCSE, SCSEDeploy
from attndeploy.families.se import SqueezeExcite, SqueezeExciteDeploy
from attndeploy.families.selfattn import SelfAttention, SelfAttentionDeploy
from attndeploy.families.sk import SelectiveKernel, SelectiveKernelDeploy
from attndeploy.families.spd import SPDConv, SPDConvDeploy
from attndeploy.spec import ModuleSpec

__all__ = ["ModuleSpec", "Tolerance", "all_specs", "create", "get_spec", "init_kwargs", "list_modules", "register"]

_REGISTRY: dict[str, ModuleSpec] = {}


def register(spec: ModuleSpec) -> ModuleSpec:
    """Add `spec`; a name can be registered once."""
    if spec.name in _REGISTRY:
        raise ValueError(f"registry name {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def list_modules() -> list[str]:
    """Registry names, sorted."""
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModuleSpec:
    """The `ModuleSpec` for `name`; an unknown name lists the valid ones and suggests the closest."""
    if name not in _REGISTRY:
        raise unknown_name("module", name, _REGISTRY)
    return _REGISTRY[name]


def all_specs() -> list[ModuleSpec]:
    return [get_spec(name) for name in list_modules()]


def init_kwargs(module: nn.Module) -> dict[str, Any]:
    """The constructor arguments of a registered module, read back from the same-named attributes."""
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


# ---- registrations: one line per name -------------------------------------------------------

EXAMPLE = (1, 64, 56, 56)
# Tolerances are about 10x the worst error measured over 3 weight seeds, opsets 13/17/18
# and the 4 parity shapes (max abs, fp32): reference vs deploy, then eager vs onnxruntime.
TIGHT: dict[str, Any] = dict(deploy_tol=Tolerance(2e-6, 1e-5), onnx_tol=Tolerance(1e-5, 1e-4))      # <= 1e-6 measured
MEDIUM: dict[str, Any] = dict(deploy_tol=Tolerance(1e-5, 1e-4), onnx_tol=Tolerance(5e-5, 1e-4))     # <= 5e-6 measured

register(ModuleSpec("se", SqueezeExcite, SqueezeExciteDeploy, EXAMPLE, "arXiv:1709.01507",
                    dict(channels=64, reduction=16), **TIGHT))
register(ModuleSpec("eca", ECA, ECADeploy, EXAMPLE, "arXiv:1910.03151", dict(channels=64), **TIGHT))
register(ModuleSpec("cbam", CBAM, CBAMDeploy, EXAMPLE, "arXiv:1807.06521",
                    dict(channels=64, reduction=16, kernel_size=7), **TIGHT))
register(ModuleSpec("sk", SelectiveKernel, SelectiveKernelDeploy, EXAMPLE, "arXiv:1903.06586",
                    dict(channels=64), **MEDIUM))
register(ModuleSpec("scse", SCSE, SCSEDeploy, EXAMPLE, "arXiv:1803.02579", dict(channels=64, reduction=16), **TIGHT))
register(ModuleSpec("nonlocal", NonLocalBlock, NonLocalBlockDeploy, EXAMPLE, "arXiv:1711.07971",
                    dict(channels=64)))
register(ModuleSpec("gc", ContextBlock, ContextBlockDeploy, EXAMPLE, "arXiv:1904.11492",
                    dict(channels=64, ratio=1 / 8, pooling_type="att", fusion_types=("channel_add",)), **MEDIUM))
register(ModuleSpec("gcnet", ContextBlock, ContextBlockDeploy, EXAMPLE, "arXiv:1904.11492",
                    dict(channels=64, ratio=1 / 4, pooling_type="att",
                         fusion_types=("channel_add", "channel_mul")), **MEDIUM))
register(ModuleSpec("mlca", MLCA, MLCADeploy, EXAMPLE, "Wan et al., EAAI 2023 (wandahangFY/MLCA)",
                    dict(channels=64, local_size=5), **TIGHT))
register(ModuleSpec("coordatt", CoordAtt, CoordAttDeploy, EXAMPLE, "arXiv:2103.02907",
                    dict(channels=64, reduction=32), **TIGHT))
register(ModuleSpec("selfattn", SelfAttention, SelfAttentionDeploy, EXAMPLE, "arXiv:1805.08318",
                    dict(channels=64), **MEDIUM))
register(ModuleSpec("acmix", ACmix, ACmixDeploy, EXAMPLE, "arXiv:2111.14556",
                    dict(channels=64, out_channels=64), min_hw=4, **MEDIUM))
register(ModuleSpec("spd", SPDConv, SPDConvDeploy, EXAMPLE, "arXiv:2208.03641",
                    dict(channels=64, out_channels=128), hw_multiple=2, **MEDIUM))
register(ModuleSpec("deformconv", DeformConvBlock, DeformConvBlockDeploy, EXAMPLE, "arXiv:1703.06211, arXiv:1811.11168",
                    dict(channels=64, out_channels=64, kernel_size=3, modulated=True)))

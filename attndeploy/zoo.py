"""Registrations: one `ModuleSpec` per registry name (imported by `attndeploy.registry`)."""

from __future__ import annotations

from typing import Any

from attndeploy.deploy.acmix import ACmixDeploy
from attndeploy.deploy.cbam import CBAMDeploy
from attndeploy.deploy.coordatt import CoordAttDeploy
from attndeploy.deploy.deformconv import DeformConvBlockDeploy
from attndeploy.deploy.eca import ECADeploy
from attndeploy.deploy.gc import ContextBlockDeploy
from attndeploy.deploy.mlca import MLCADeploy
from attndeploy.deploy.nonlocal_block import NonLocalBlockDeploy
from attndeploy.deploy.scse import SCSEDeploy
from attndeploy.deploy.se import SqueezeExciteDeploy
from attndeploy.deploy.selfattn import SelfAttentionDeploy
from attndeploy.deploy.sk import SelectiveKernelDeploy
from attndeploy.deploy.spd import SPDConvDeploy
from attndeploy.layers.acmix import ACmix
from attndeploy.layers.cbam import CBAM
from attndeploy.layers.coordatt import CoordAtt
from attndeploy.layers.deformconv import DeformConvBlock
from attndeploy.layers.eca import ECA
from attndeploy.layers.gc import ContextBlock
from attndeploy.layers.mlca import MLCA
from attndeploy.layers.nonlocal_block import NonLocalBlock
from attndeploy.layers.scse import SCSE
from attndeploy.layers.se import SqueezeExcite
from attndeploy.layers.selfattn import SelfAttention
from attndeploy.layers.sk import SelectiveKernel
from attndeploy.layers.spd import SPDConv
from attndeploy.registry import ModuleSpec, Tolerance, register

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

"""The host network: each registry attention in a whole network, exported and parity-checked.

Exports run inside `export_rewrites` (the pipeline enters it): the registry modules are
swapped for their deploy twins, so no rewrite should be needed for the graph itself.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import pytest
import torch

import attndeploy
from attndeploy.errors import UsageError
from attndeploy.nets.host import HostNet, build_host
from attndeploy.weights import randomize_

EXAMPLE = (1, 3, 64, 64)
PARITY = [EXAMPLE, (2, 3, 64, 64), (2, 3, 96, 80), (1, 3, 96, 80)]  # two resolutions, batch 2
HAS_DEFORM_LOWERING = importlib.util.find_spec("attndeploy.lowering.deformconv") is not None


def _names() -> list[object]:
    params: list[object] = []
    for name in attndeploy.list_modules():
        marks = [pytest.mark.slow]
        if name == "deformconv" and not HAS_DEFORM_LOWERING:
            marks.append(pytest.mark.skip(reason="attndeploy.lowering.deformconv is not there yet"))
        params.append(pytest.param(name, marks=marks, id=name))
    return params


def _export(name: str, tmp_path: Path, opset: int, stages: tuple[int, ...] = (1, 2, 3)) -> attndeploy.ExportResult:
    model = randomize_(HostNet(name, attn_stages=stages), 0).eval()
    x = torch.randn(EXAMPLE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return attndeploy.export(model, x, tmp_path / f"host_{name}.onnx", opset=opset, dynamic=True,
                                 parity_shapes=PARITY)


@pytest.mark.parametrize("name", _names())
def test_host_with_each_attention_exports_and_matches(name: str, tmp_path: Path) -> None:
    res = _export(name, tmp_path, 17)
    assert res.parity.passed, res.parity.failure_message()
    assert len(res.parity.outputs) == 3 and res.parity.shapes == ["1x3x64x64", "2x3x64x64", "2x3x96x80", "1x3x96x80"]
    assert len(res.swaps) == (2 if name == "spd" else 3), res.swaps


def test_host_shapes_and_structure() -> None:
    model = build_host("cbam", width=16).eval()
    with torch.no_grad():
        p2, p3, p4 = model(torch.randn(2, 3, 37, 50))
    assert p2.shape == (2, 32, 19, 25) and p3.shape == (2, 32, 10, 13) and p4.shape == (2, 32, 5, 7)
    paths = dict(model.named_modules())
    assert type(paths["attn3"]).__name__ == "CBAM" and "lateral.2" in paths and "smooth.0" in paths
    spd = build_host("spd")
    assert type(spd.layer2[0]).__name__ == "SPDConv" and type(spd.attn2).__name__ == "Identity"
    assert type(HostNet("se", attn_stages=(3,)).attn1).__name__ == "Identity"
    plain = HostNet(attn=None)
    assert all(type(getattr(plain, f"attn{i}")).__name__ == "Identity" for i in (1, 2, 3))


def test_host_bad_arguments() -> None:
    with pytest.raises(UsageError, match="unknown module 'cbma'") as info:
        build_host("cbma")
    assert "did you mean 'cbam'" in str(info.value)
    with pytest.raises(UsageError, match="multiple of 8"):
        build_host("se", width=12)


@pytest.mark.slow
def test_host_recipe_end_to_end(tmp_path: Path) -> None:
    from attndeploy.loading import load_model
    from attndeploy.recipes import load_recipe

    (job,) = load_recipe(Path(__file__).resolve().parents[1] / "export" / "host_cbam.toml").jobs
    assert isinstance(job.source, str) and job.example is not None
    model = randomize_(load_model(job.source, job.kwargs), 0).eval()
    x = torch.randn(job.example)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = attndeploy.export(model, x, tmp_path / "host_cbam.onnx", opset=job.opset, dynamic=job.dynamic,
                                exporter=job.exporter)
    assert res.parity.passed, res.parity.failure_message()

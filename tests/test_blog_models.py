"""User code that does not use attndeploy's classes, exported with the export-time rewrites.

For each blog-style model (`tests/blog_models.py`) and each exporter (TorchScript at opset
17, dynamo at opset 18): first what happens *without* the rewrites (the export fails, or
it is wrong at other shapes, where that is true), then with them: the pipeline's parity
passes and an independent onnxruntime run matches the model's own eager outputs, computed
outside the rewrites, at the example shape and three others (batch 2, odd, non-square).
Models that already exported correctly come out no worse (same parity, no more nodes).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

import attndeploy
from attndeploy.pipeline import ExportFailed
from attndeploy.pipeline.result import ExportResult
from attndeploy.rewrites import export_rewrites
from attndeploy.weights import randomize_
from tests import blog_models as bm
from tests.helpers import assert_onnx_matches_eager, ort_run

C = 32
EXAMPLE = (1, C, 20, 20)
OTHER_SHAPES = [(2, C, 20, 20), (1, C, 15, 23), (3, C, 9, 31)]  # batch 2, odd H and W, non-square
OPSETS = {"torchscript": 17, "dynamo": 18}


def export_with_rewrites(model: nn.Module, x: torch.Tensor, path: Path, **kwargs: object) -> tuple[ExportResult,
                                                                                                   dict]:
    """`attndeploy.export` (which enters `export_rewrites` itself) and what the rewrites did."""
    res = attndeploy.export(model, x, path, **kwargs)  # type: ignore[arg-type]
    return res, res.rewrites


def _sagan() -> nn.Module:
    model = bm.SAGANBlog(C)
    model.gamma = torch.tensor([0.7])  # a plain tensor, as the blog copies keep it
    return model


BLOG: dict[str, Callable[[], nn.Module]] = {
    "coordatt": lambda: bm.CoordAttBlog(C, C), "mlca": lambda: bm.MLCABlog(C), "acmix": lambda: bm.ACmixBlog(C, C),
    "sagan": _sagan, "sk": lambda: bm.SKBlog(C), "gc": lambda: bm.GCBlog(C), "cbam": lambda: bm.CBAMBlog(C),
}
# What the exporters do without the rewrites (torch 2.13): "fails" (no ONNX file from any route,
# H, W fixed included: TorchScript traces `x.size()` into a pooling kernel it cannot export),
# "refused, fixed" (the dynamic export fails; H, W fixed passes), "wrong, fixed" (the dynamic
# graph exports with the sample's H, W baked in; H, W fixed passes), "im2col" (exports
# nn.Unfold as a Gather-based index computation), "ok".
WITHOUT = {
    "coordatt": {"torchscript": "fails", "dynamo": "wrong, fixed"},
    "mlca": {"torchscript": "fails", "dynamo": "wrong, fixed"},
    "acmix": {"torchscript": "im2col", "dynamo": "refused, fixed"},
    "sagan": {"torchscript": "ok", "dynamo": "ok"},
    "sk": {"torchscript": "ok", "dynamo": "ok"},
    "gc": {"torchscript": "fails", "dynamo": "refused, fixed"},
    "cbam": {"torchscript": "fails", "dynamo": "refused, fixed"},
}
FIRES = {"coordatt": {"adaptive_avg_pool2d"}, "mlca": {"adaptive_avg_pool2d"}, "acmix": {"unfold", "linspace"},
         "sagan": set(), "sk": {"zeros"}, "gc": {"avg_pool2d"}, "cbam": {"avg_pool2d", "max_pool2d"}}


def _model(name: str) -> nn.Module:
    torch.manual_seed(0)
    model = BLOG[name]().eval()
    randomize_(model, 0)
    return model


def _cases() -> list[object]:
    return [pytest.param(name, exporter, id=f"{name}-{exporter}", marks=[pytest.mark.slow] if exporter == "dynamo"
                         else []) for name in BLOG for exporter in OPSETS]


def _export(model: nn.Module, x: torch.Tensor, path: Path, exporter: str, rewrites: bool) -> tuple[ExportResult,
                                                                                                     dict | None]:
    kwargs = {"opset": OPSETS[exporter], "dynamic": True, "exporter": exporter}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if rewrites:
            return export_with_rewrites(model, x, path, **kwargs)
        return attndeploy.export(model, x, path, rewrites=False, **kwargs), None  # type: ignore[arg-type]


def _max_abs_vs_eager(onnx_path: Path, model: nn.Module, shape: tuple[int, ...]) -> float:
    x = torch.randn(shape)
    with torch.no_grad():
        refs = model(x)
    refs = refs if isinstance(refs, tuple) else (refs,)
    return max(float(np.abs(g - r.numpy()).max()) for g, r in zip(ort_run(onnx_path, x), refs))


@pytest.mark.parametrize("name, exporter", _cases())
def test_blog_model_without_rewrites(name: str, exporter: str, tmp_path: Path) -> None:
    model, x = _model(name), torch.randn(EXAMPLE)
    expected = WITHOUT[name][exporter]
    if expected == "fails":
        with pytest.raises(ExportFailed, match=r"every route.*H, W fixed"):  # the fixed route was tried and named
            _export(model, x, tmp_path / "m.onnx", exporter, rewrites=False)
        return
    res, _ = _export(model, x, tmp_path / "m.onnx", exporter, rewrites=False)
    if expected.endswith(", fixed"):
        # no dynamic graph is right (the export refuses it, or it is wrong at other H, W): the last route fixes
        # H, W at the example's, keeps the batch dynamic, and says why
        first = next(n for n in res.notes if n.startswith(f"route {exporter}-"))
        assert (": fails (" if expected.startswith("wrong") else ": cannot export (") in first, first
        assert res.route.endswith(", H, W fixed") and res.evidence["dynamic_axes"] == [0], (res.route, res.notes)
        assert any(n.startswith("H, W fixed at") for n in res.notes)
        bad = []
        for shape in OTHER_SHAPES[1:]:  # the written graph refuses other H, W rather than answer wrongly
            try:
                bad.append(_max_abs_vs_eager(res.onnx_path, model, shape) > 1e-3)
            except Exception:  # noqa: BLE001  (onnxruntime refuses a size the graph fixed)
                bad.append(False)
        assert not any(bad)
        return
    assert res.parity.passed, res.parity.failure_message()
    if expected == "im2col":
        with_rw, _ = _export(model, x, tmp_path / "rw.onnx", exporter, rewrites=True)
        assert res.node_counts.get("Gather", 0) > with_rw.node_counts.get("Gather", 0)


@pytest.mark.parametrize("name, exporter", _cases())
def test_blog_model_with_rewrites(name: str, exporter: str, tmp_path: Path) -> None:
    model, x = _model(name), torch.randn(EXAMPLE)
    res, log = _export(model, x, tmp_path / "m.onnx", exporter, rewrites=True)
    assert log is not None
    assert (FIRES[name] <= set(log["counts"])) if FIRES[name] else not log["counts"], log
    assert res.exporter == exporter and res.opset == OPSETS[exporter]
    assert res.parity.passed, res.parity.failure_message()
    assert_onnx_matches_eager(res.onnx_path, model, [EXAMPLE, *OTHER_SHAPES])  # eager outside the rewrites


def test_sk_cpu_accumulators_follow_the_input_device() -> None:
    """The blog SK makes its accumulators on the CPU: wrong for any other device (meta stands in for CUDA)."""
    model = bm.SKBlog(C).eval().to("meta")
    x = torch.randn(1, C, 8, 8, device="meta")
    with pytest.raises(RuntimeError, match="device"):
        model(x)
    with export_rewrites(x) as log:
        assert model(x).device.type == "meta"
    assert log.counts["zeros"] == 2


NO_WORSE_ZOO = ["se", "cbam", "coordatt", "mlca", "gc", "eca"]


def _resnet_style() -> nn.Module:
    """resnet18's parts at a fraction of its size (stem, max pool, torchvision's BasicBlock with and without a
    downsample, adaptive pool, classifier): it stands for resnet18 under both exporters."""
    block = torchvision.models.resnet.BasicBlock
    down = nn.Sequential(nn.Conv2d(16, 32, 1, 2, bias=False), nn.BatchNorm2d(16 * 2))
    return nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(3, 2, 1),
                         block(16, 16), block(16, 32, 2, down), nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
                         nn.Linear(32, 10))


def _no_worse(model: nn.Module | str, x: torch.Tensor, tmp_path: Path, exporter: str) -> None:
    kwargs = {"opset": OPSETS[exporter], "exporter": exporter, "dynamic": True}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = attndeploy.export(model, x, tmp_path / "plain.onnx", rewrites=False, **kwargs)  # type: ignore[arg-type]
        rewritten, _ = export_with_rewrites(model, x, tmp_path / "rw.onnx", **kwargs)
    assert plain.parity.passed and rewritten.parity.passed
    assert rewritten.node_counts == plain.node_counts
    assert rewritten.parity.max_abs_err <= max(plain.parity.max_abs_err * 2, 1e-5)


@pytest.mark.parametrize("name", NO_WORSE_ZOO)
def test_zoo_twins_no_worse_with_rewrites(name: str, tmp_path: Path) -> None:
    _no_worse(name, torch.randn(1, 64, 20, 20), tmp_path, "torchscript")


def test_resnet_style_no_worse_with_rewrites(tmp_path: Path) -> None:
    _no_worse(randomize_(_resnet_style(), 0).eval(), torch.randn(1, 3, 32, 32), tmp_path, "torchscript")


def test_resnet_style_and_twins_no_worse_with_rewrites_through_dynamo(tmp_path: Path) -> None:
    """torchvision's BasicBlock, max and adaptive pools (resnet18's parts, a fraction of its dynamo tracing time)."""
    _no_worse(randomize_(_resnet_style(), 0).eval(), torch.randn(1, 3, 32, 32), tmp_path, "dynamo")
    for name in ("cbam", "mlca"):
        _no_worse(name, torch.randn(1, 64, 20, 20), tmp_path, "dynamo")

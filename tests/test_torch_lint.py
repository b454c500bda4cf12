"""The pre-export torch lint: module paths, hazards, the rewrite that handles each; clean models stay clean."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

import attndeploy
from attndeploy.errors import UsageError
from attndeploy.lint.torch_lint import TorchFinding, lint_model
from tests import blog_models as bm

C = 32


class _Block(nn.Module):
    def __init__(self, channels: int, attn: nn.Module | None = None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.attn = attn if attn is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(torch.relu(self.conv(x)))


class _Backbone(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, C, 3, padding=1)
        self.layer3 = nn.Sequential(_Block(C), _Block(C, bm.CoordAttBlog(C, C)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer3(self.stem(x))


class _Detector(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = _Backbone()
        self.head = nn.Conv2d(C, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def test_names_the_module_path_and_the_hazard() -> None:
    findings = lint_model(_Detector(), torch.randn(1, 3, 20, 16))
    assert len(findings) == 2 and {f.path for f in findings} == {"backbone.layer3.1.attn"}
    assert all(f.hazard == "adaptive pool size" and f.rewrite == "adaptive_avg_pool2d" for f in findings)
    h_pool = next(f for f in findings if "(20, 1)" in f.call)
    assert "H=20 equals the input's" in h_pool.consequence and "blog_models.py" in h_pool.site
    assert h_pool.message().startswith("backbone.layer3.1.attn: F.adaptive_avg_pool2d(output_size=(20, 1))")
    assert "handled by the export-time rewrite 'adaptive_avg_pool2d'" in h_pool.message()


def test_clean_models_report_nothing() -> None:
    assert lint_model(torchvision.models.resnet18(), torch.randn(1, 3, 32, 32)) == []
    for name in attndeploy.list_modules():
        spec = attndeploy.get_spec(name)
        twin = attndeploy.to_deploy(attndeploy.create(name))
        assert lint_model(twin, torch.randn(1, spec.defaults["channels"], 12, 12)) == [], name


@pytest.mark.parametrize("name, hazards, rewrites", [
    ("mlca", {"adaptive pool size"}, {"adaptive_avg_pool2d"}),
    ("acmix", {"linspace", "unfold"}, {"linspace", "unfold"}),
    ("sk", {"factory without device"}, {"zeros"}),
    ("gc", {"whole-input pool kernel"}, {"avg_pool2d"}),
    ("cbam", {"whole-input pool kernel"}, {"avg_pool2d", "max_pool2d"}),
])
def test_blog_models_name_their_hazards_and_rewrites(name: str, hazards: set[str], rewrites: set[str]) -> None:
    model = {"mlca": lambda: bm.MLCABlog(C), "acmix": lambda: bm.ACmixBlog(C, C), "sk": lambda: bm.SKBlog(C),
             "gc": lambda: bm.GCBlog(C), "cbam": lambda: bm.CBAMBlog(C)}[name]()
    findings = lint_model(model, torch.randn(1, C, 12, 12))
    assert {f.hazard for f in findings} == hazards and {f.rewrite for f in findings} == rewrites


def test_plain_tensor_gamma_is_reported() -> None:
    model = bm.SAGANBlog(C)
    model.gamma = torch.tensor([0.7])
    [finding] = lint_model(model, torch.randn(1, C, 6, 6))
    assert finding.hazard == "plain tensor attribute" and finding.call == "gamma" and finding.rewrite is None
    assert "state_dict" in finding.consequence and "nn.Parameter" in finding.hint


class _Devices(nn.Module):
    """Fixed devices and float64, as in copies written for one GPU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offset = torch.ones(1).cuda()  # fails without a GPU: the lint redirects it and reports it
        scale = torch.arange(x.shape[-1], device="cuda").double()
        return x + offset + scale.float()


class ReplacesItsCache(nn.Module):
    """A plain tensor attribute replaced in forward (as a detector head caches its anchors): the old tensor is freed,
    and a tensor made after it often takes its address, so its id."""

    def __init__(self) -> None:
        super().__init__()
        self.cache = torch.zeros(1, 3, 4, 4)
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.cache = None  # type: ignore[assignment]
        for _ in range(200):  # new tensors, each passed to a torch function
            x = x + 1.0
        return self.conv(x)


def test_a_freed_plain_tensor_is_not_found_again_in_a_tensor_that_took_its_id() -> None:
    for _ in range(10):  # whether an address is taken again varies between runs: ten chances to show it
        findings = lint_model(ReplacesItsCache(), torch.randn(1, 3, 4, 4))
        assert not [f for f in findings if f.hazard == "plain tensor attribute"], findings


def test_fixed_devices_and_float64_are_reported_without_a_gpu() -> None:
    findings = lint_model(_Devices(), torch.randn(1, 2, 3, 5))
    by_hazard = {f.hazard: f for f in findings}
    assert set(by_hazard) == {"factory without device", "fixed device", "float64"}
    assert {f.call for f in findings if f.hazard == "fixed device"} == {"Tensor.cuda(...)",
                                                                      "torch.arange(device='cuda')"}
    assert by_hazard["float64"].rewrite is None and "x.dtype" in by_hazard["float64"].hint


def test_repeated_calls_are_counted_once_per_site() -> None:
    class Twice(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for _ in range(3):
                x = x + nn.functional.adaptive_avg_pool2d(x, (x.shape[2], 1))
            return x

    [finding] = lint_model(Twice(), torch.randn(1, 2, 6, 4))
    assert finding.count == 3 and finding.to_dict()["count"] == 3 and isinstance(finding, TorchFinding)


def test_eager_failure_and_bad_arguments_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="fails in eager mode") as info:
        lint_model(_Detector(), torch.randn(1, 5, 8, 8))
    assert "stem" in str(info.value)
    with pytest.raises(UsageError, match="nn.Module"):
        lint_model(lambda x: x, torch.randn(1))  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="example input tensor"):
        lint_model(_Detector(), (1, 3, 8, 8))  # type: ignore[arg-type]

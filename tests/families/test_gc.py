"""ContextBlock (GCNet, arXiv:1904.11492) against an independent float64 formula."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from attndeploy.errors import UsageError
from attndeploy.families.gc import ContextBlock, ContextBlockDeploy
from attndeploy.weights import randomize_
from tests.helpers import assert_twin_equals_reference

GC = dict(channels=64, ratio=1 / 8, pooling_type="att", fusion_types=("channel_add",))
GCNET = dict(channels=64, ratio=1 / 4, pooling_type="att", fusion_types=("channel_add", "channel_mul"))
AVG_MUL = dict(channels=32, ratio=1 / 4, pooling_type="avg", fusion_types=("channel_mul",))
CONFIGS = [GC, GCNET, AVG_MUL]


def transform_formula(seq: nn.Sequential, ctx: torch.Tensor) -> torch.Tensor:
    """ctx (N, C) -> conv1x1 -> LayerNorm over planes -> ReLU -> conv1x1 -> (N, C)."""
    t = ctx @ seq[0].weight[:, :, 0, 0].T + seq[0].bias  # (N, planes)
    mu = t.mean(dim=1, keepdim=True)
    var = ((t - mu) ** 2).mean(dim=1, keepdim=True)
    ln = seq[1]
    t = (t - mu) / torch.sqrt(var + ln.eps) * ln.weight[:, 0, 0] + ln.bias[:, 0, 0]
    t = torch.clamp(t, min=0)
    return t @ seq[3].weight[:, :, 0, 0].T + seq[3].bias


def gc_formula(m: ContextBlock, x: torch.Tensor) -> torch.Tensor:
    """Paper eq. 3: z_i = x_i (*) sigmoid(T_mul(ctx)) + T_add(ctx), ctx = sum_j softmax_j(W_k x_j) x_j."""
    n, c, h, w = x.shape
    if m.pooling_type == "att":
        logits = torch.einsum("c,nchw->nhw", m.conv_mask.weight[0, :, 0, 0], x) + m.conv_mask.bias[0]
        e = torch.exp(logits - logits.amax(dim=(1, 2), keepdim=True))
        alpha = e / e.sum(dim=(1, 2), keepdim=True)  # softmax over all H*W positions
        ctx = torch.einsum("nchw,nhw->nc", x, alpha)
    else:
        ctx = x.sum(dim=(2, 3)) / (h * w)
    out = x
    if "channel_mul" in m.fusion_types:
        out = out * torch.sigmoid(transform_formula(m.channel_mul_conv, ctx))[:, :, None, None]
    if "channel_add" in m.fusion_types:
        out = out + transform_formula(m.channel_add_conv, ctx)[:, :, None, None]
    return out


@pytest.mark.parametrize("kwargs", CONFIGS, ids=["gc", "gcnet", "avg_mul"])
def test_matches_official_formula_float64(kwargs):
    m = randomize_(ContextBlock(**kwargs)).eval().double()
    for i, (h, w) in enumerate([(9, 7), (5, 13), (1, 1)]):
        x = torch.randn(2, kwargs["channels"], h, w, generator=torch.Generator().manual_seed(i), dtype=torch.float64)
        with torch.no_grad():
            torch.testing.assert_close(m(x), gc_formula(m, x), atol=1e-10, rtol=1e-10)


def transform_keys(prefix: str, c: int, planes: int) -> dict[str, tuple[int, ...]]:
    return {
        f"{prefix}.0.weight": (planes, c, 1, 1), f"{prefix}.0.bias": (planes,),
        f"{prefix}.1.weight": (planes, 1, 1), f"{prefix}.1.bias": (planes, 1, 1),
        f"{prefix}.3.weight": (c, planes, 1, 1), f"{prefix}.3.bias": (c,),
    }


def test_official_state_dict_keys_and_shapes():
    mask = {"conv_mask.weight": (1, 64, 1, 1), "conv_mask.bias": (1,)}
    shapes = lambda m: {k: tuple(v.shape) for k, v in m.state_dict().items()}  # noqa: E731
    assert shapes(ContextBlock(**GC)) == {**mask, **transform_keys("channel_add_conv", 64, 8)}
    assert shapes(ContextBlock(**GCNET)) == {**mask, **transform_keys("channel_add_conv", 64, 16),
                                             **transform_keys("channel_mul_conv", 64, 16)}
    assert shapes(ContextBlock(**AVG_MUL)) == transform_keys("channel_mul_conv", 32, 8)


def test_official_init_zeroes_last_convs():
    m = ContextBlock(**GCNET).eval()
    for seq in (m.channel_add_conv, m.channel_mul_conv):
        assert not seq[-1].weight.any() and not seq[-1].bias.any()
        assert seq[0].weight.any()
    assert m.conv_mask.weight.any() and not m.conv_mask.bias.any()
    x = torch.randn(2, 64, 5, 6)
    with torch.no_grad():
        torch.testing.assert_close(ContextBlock(**GC).eval()(x), x)  # add-only block starts as identity
        torch.testing.assert_close(m(x), x * 0.5)  # sigmoid(0) = 0.5


def test_fusion_types_stored_as_given_and_args_kept():
    m = ContextBlock(**GCNET)
    assert m.fusion_types == ("channel_add", "channel_mul")
    assert (m.channels, m.ratio, m.pooling_type, m.planes) == (64, 1 / 4, "att", 16)
    assert ContextBlock(64, fusion_types=["channel_mul"]).fusion_types == ("channel_mul",)


@pytest.mark.parametrize("kwargs,rule", [
    (dict(pooling_type="max"), "pooling_type must be a known pooling"),
    (dict(fusion_types=()), "fusion_types must be a non-empty list or tuple"),
    (dict(fusion_types="channel_add"), "fusion_types must be a non-empty list or tuple"),
    (dict(fusion_types=("channel_add", "channel_concat")), "fusion_types must be a subset"),
    (dict(ratio=1 / 128), "planes = int(channels * ratio) must be at least 1"),
])
def test_input_validation(kwargs, rule):
    with pytest.raises(UsageError) as info:
        ContextBlock(64, **kwargs)
    assert rule in str(info.value) and "expected" in str(info.value) and "got" in str(info.value)


@pytest.mark.parametrize("kwargs", CONFIGS, ids=["gc", "gcnet", "avg_mul"])
@pytest.mark.parametrize("n,h,w", [(1, 56, 56), (2, 41, 29), (3, 20, 71)])
def test_deploy_twin_equals_reference(kwargs, n, h, w):
    assert_twin_equals_reference(randomize_(ContextBlock(**kwargs), 1), ContextBlockDeploy(**kwargs),
                                 [(n, kwargs["channels"], h, w)], atol=1e-5, rtol=1e-4, seed=5)

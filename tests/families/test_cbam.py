"""CBAM: the official formula in float64, the Jongchan/attention-module state_dict layout,
the blog bugs, the deploy twin."""

from __future__ import annotations

import pytest
import torch

from attndeploy.errors import UsageError
from attndeploy.families.cbam import CBAM, CBAMDeploy
from attndeploy.weights import randomize_
from tests.helpers import assert_twin_equals_reference

SHAPES = [(2, 32, 9, 13), (1, 32, 7, 5), (3, 32, 2, 11)]


def sigmoid(t: torch.Tensor) -> torch.Tensor:
    return 1.0 / (1.0 + torch.exp(-t))


def official_cbam(x: torch.Tensor, m: CBAM, blog_bug: str = "") -> torch.Tensor:
    """Woo et al. eq. 2-3 with the official code's layers (Linear with bias, BN after the k x k conv).

    `blog_bug`: "max_of_avg" takes the max branch from the avg-pooled tensor; "double_sigmoid"
    applies a sigmoid to each branch before summing (both must differ from the module).
    """
    n, c, h, w = x.shape
    mlp = m.ChannelGate.mlp
    w1, b1, w2, b2 = mlp[1].weight, mlp[1].bias, mlp[3].weight, mlp[3].bias

    def shared_mlp(v: torch.Tensor) -> torch.Tensor:
        return torch.clamp(v @ w1.T + b1, min=0) @ w2.T + b2

    avg = torch.einsum("nchw->nc", x) / (h * w)
    mx = torch.full((n, c), -torch.inf, dtype=x.dtype)
    for i in range(h):
        for j in range(w):
            mx = torch.maximum(mx, x[:, :, i, j])
    if blog_bug == "max_of_avg":
        mx = avg
    if blog_bug == "double_sigmoid":
        gate = sigmoid(shared_mlp(avg)) + sigmoid(shared_mlp(mx))
    else:
        gate = sigmoid(shared_mlp(avg) + shared_mlp(mx))
    x1 = x * gate[:, :, None, None]

    comp = torch.stack([x1.max(dim=1).values, torch.einsum("nchw->nhw", x1) / c], dim=1)  # max first
    kw = m.SpatialGate.spatial.conv.weight  # (1, 2, k, k)
    k = kw.shape[-1]
    p = (k - 1) // 2
    padded = torch.zeros(n, 2, h + 2 * p, w + 2 * p, dtype=x.dtype)
    padded[:, :, p:p + h, p:p + w] = comp
    conv = torch.zeros(n, h, w, dtype=x.dtype)
    for ch in range(2):
        for i in range(k):
            for j in range(k):
                conv += kw[0, ch, i, j] * padded[:, ch, i:i + h, j:j + w]
    bn = m.SpatialGate.spatial.bn
    s = (conv - bn.running_mean[0]) / torch.sqrt(bn.running_var[0] + bn.eps) * bn.weight[0] + bn.bias[0]
    return x1 * sigmoid(s)[:, None]


@pytest.mark.parametrize("kernel_size", [7, 3])
@pytest.mark.parametrize("shape", SHAPES)
def test_reference_matches_official_formula(shape, kernel_size):
    m = randomize_(CBAM(32, reduction=4, kernel_size=kernel_size)).eval().double()
    x = torch.randn(shape, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(m(x), official_cbam(x, m), atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("bug", ["max_of_avg", "double_sigmoid"])
def test_blog_bugs_are_not_reproduced(bug):
    m = randomize_(CBAM(32, reduction=4)).eval().double()
    x = torch.randn(2, 32, 9, 13, dtype=torch.float64)
    with torch.no_grad():
        assert (m(x) - official_cbam(x, m, blog_bug=bug)).abs().max() > 1e-3


def test_channel_pool_is_max_then_mean():
    x = torch.randn(2, 8, 5, 6)
    pooled = CBAM(8, reduction=4).SpatialGate.compress(x)
    torch.testing.assert_close(pooled[:, 0], x.amax(1))
    torch.testing.assert_close(pooled[:, 1], x.mean(1))


def test_official_state_dict_layout():
    sd = CBAM(64, reduction=16, kernel_size=7).state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == {
        "ChannelGate.mlp.1.weight": (4, 64),
        "ChannelGate.mlp.1.bias": (4,),
        "ChannelGate.mlp.3.weight": (64, 4),
        "ChannelGate.mlp.3.bias": (64,),
        "SpatialGate.spatial.conv.weight": (1, 2, 7, 7),
        "SpatialGate.spatial.bn.weight": (1,),
        "SpatialGate.spatial.bn.bias": (1,),
        "SpatialGate.spatial.bn.running_mean": (1,),
        "SpatialGate.spatial.bn.running_var": (1,),
        "SpatialGate.spatial.bn.num_batches_tracked": (),
    }


def test_official_batchnorm_settings():
    bn = CBAM(64).SpatialGate.spatial.bn
    assert (bn.eps, bn.momentum, bn.affine) == (1e-5, 0.01, True)


def test_constructor_args_are_attributes():
    m = CBAM(48, reduction=8, kernel_size=3)
    assert (m.channels, m.reduction, m.kernel_size) == (48, 8, 3)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(channels=40, reduction=16),
         "channels must be divisible by reduction=16: expected a multiple of 16, got 40"),
        (dict(channels=64, reduction=0), "reduction must be positive: expected >= 1, got 0"),
        (dict(channels=64, kernel_size=6),
         r"CBAM kernel_size must be odd \(same padding\): expected an odd integer >= 1, got 6"),
    ],
)
def test_invalid_arguments(kwargs, fragment):
    with pytest.raises(UsageError, match=fragment):
        CBAM(**kwargs)


@pytest.mark.parametrize("shape", [(1, 64, 56, 56), (2, 64, 41, 29), (3, 64, 1, 7)])
def test_deploy_equals_reference(shape):
    assert_twin_equals_reference(randomize_(CBAM(64)), CBAMDeploy(64), [shape], atol=2e-6)

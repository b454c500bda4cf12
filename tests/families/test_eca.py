"""ECA: the official formula in float64, the eca_layer state_dict layout, the adaptive kernel, the deploy twin."""

from __future__ import annotations

import pytest
import torch

from attndeploy.errors import UsageError
from attndeploy.families.eca import ECA, ECADeploy
from attndeploy.weights import randomize_
from tests.helpers import assert_twin_equals_reference

SHAPES = [(2, 64, 9, 13), (1, 64, 7, 5), (3, 64, 1, 6)]


def official_eca(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Wang et al. eq. 4: w_c = sigmoid(sum_j k_j y_{c+j-p}) over zero-padded channel descriptors y."""
    n, c, h, w = x.shape
    y = torch.einsum("nchw->nc", x) / (h * w)
    k = weight.numel()
    p = (k - 1) // 2
    a = torch.zeros(n, c, dtype=x.dtype)
    for ch in range(c):
        for j in range(k):
            src = ch + j - p
            if 0 <= src < c:
                a[:, ch] += weight.flatten()[j] * y[:, src]
        if bias is not None:
            a[:, ch] += bias[0]
    return x * (1.0 / (1.0 + torch.exp(-a)))[:, :, None, None]


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_reference_matches_official_formula(shape, bias):
    m = randomize_(ECA(256, bias=bias)).eval().double()  # k = 5
    x = torch.randn((shape[0], 256, *shape[2:]), dtype=torch.float64)
    expected = official_eca(x, m.conv.weight, m.conv.bias)
    torch.testing.assert_close(m(x), expected, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize(
    "channels, k", [(16, 3), (64, 3), (128, 5), (256, 5), (512, 5), (1024, 5), (2048, 7)]
)
def test_adaptive_kernel_size(channels, k):
    m = ECA(channels)
    assert m.kernel_size == k
    assert m.conv.kernel_size == (k,) and m.conv.padding == ((k - 1) // 2,)


def test_official_state_dict_layout_is_bias_free():
    sd = ECA(64).state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == {"conv.weight": (1, 1, 3)}


def test_bias_flag_adds_the_blog_layout():
    sd = ECA(64, bias=True).state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == {"conv.weight": (1, 1, 3), "conv.bias": (1,)}


def test_constructor_args_are_attributes():
    m = ECA(96, gamma=3, b=2, bias=True)
    assert (m.channels, m.gamma, m.b, m.bias) == (96, 3, 2, True)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(channels=0), "channels must be positive: expected >= 1, got 0"),
        (dict(channels=64, gamma=0), "gamma must be positive: expected > 0, got 0"),
    ],
)
def test_invalid_arguments(kwargs, fragment):
    with pytest.raises(UsageError, match=fragment):
        ECA(**kwargs)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("shape", [(1, 64, 56, 56), (2, 64, 41, 29), (3, 64, 1, 7)])
def test_deploy_equals_reference(shape, bias):
    assert_twin_equals_reference(randomize_(ECA(64, bias=bias)), ECADeploy(64, bias=bias), [shape], atol=2e-6)

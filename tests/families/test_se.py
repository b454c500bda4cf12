"""SqueezeExcite: the official SE formula in float64, the SELayer state_dict layout, the deploy twin."""

from __future__ import annotations

import pytest
import torch

from attndeploy.errors import UsageError
from attndeploy.families.se import SqueezeExcite, SqueezeExciteDeploy
from attndeploy.weights import randomize_
from tests.helpers import assert_twin_equals_reference

SHAPES = [(2, 32, 9, 13), (1, 32, 7, 5), (3, 32, 1, 6)]


def sigmoid(t: torch.Tensor) -> torch.Tensor:
    return 1.0 / (1.0 + torch.exp(-t))


def official_se(x: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    """Hu et al. eq. 2-4: z_c = mean_ij x_cij; s = sigmoid(W2 relu(W1 z)); y_c = s_c x_c."""
    n, c, h, w = x.shape
    z = torch.zeros(n, c, dtype=x.dtype)
    for i in range(h):
        for j in range(w):
            z += x[:, :, i, j]
    z = z / (h * w)
    s = sigmoid(torch.einsum("nr,cr->nc", torch.clamp(torch.einsum("nc,rc->nr", z, w1), min=0), w2))
    return torch.einsum("nchw,nc->nchw", x, s)


@pytest.mark.parametrize("shape", SHAPES)
def test_reference_matches_official_formula(shape):
    m = randomize_(SqueezeExcite(32, reduction=4)).eval().double()
    x = torch.randn(shape, dtype=torch.float64)
    expected = official_se(x, m.fc[0].weight, m.fc[2].weight)
    torch.testing.assert_close(m(x), expected, atol=1e-10, rtol=1e-10)


def test_official_state_dict_layout():
    sd = SqueezeExcite(64, reduction=16).state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == {"fc.0.weight": (4, 64), "fc.2.weight": (64, 4)}


def test_constructor_args_are_attributes():
    m = SqueezeExcite(48, reduction=8)
    assert (m.channels, m.reduction) == (48, 8)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(channels=40, reduction=16),
         "channels must be divisible by reduction=16: expected a multiple of 16, got 40"),
        (dict(channels=64, reduction=0), "reduction must be positive: expected >= 1, got 0"),
        (dict(channels=0, reduction=1), "channels must be positive: expected >= 1, got 0"),
    ],
)
def test_invalid_arguments(kwargs, fragment):
    with pytest.raises(UsageError, match=fragment):
        SqueezeExcite(**kwargs)


@pytest.mark.parametrize("shape", [(1, 64, 56, 56), (2, 64, 41, 29), (3, 64, 1, 7)])
def test_deploy_equals_reference(shape):
    assert_twin_equals_reference(randomize_(SqueezeExcite(64)), SqueezeExciteDeploy(64), [shape], atol=2e-6)

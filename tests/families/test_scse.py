"""SCSE: the scSE formula in float64, the SCSEModule state_dict layout, the deploy twin."""

from __future__ import annotations

import pytest
import torch

from attndeploy.errors import UsageError
from attndeploy.families.scse import SCSE, SCSEDeploy
from attndeploy.weights import randomize_
from tests.helpers import assert_twin_equals_reference

SHAPES = [(2, 32, 9, 13), (1, 32, 7, 5), (3, 32, 1, 6)]


def sigmoid(t: torch.Tensor) -> torch.Tensor:
    return 1.0 / (1.0 + torch.exp(-t))


def official_scse(x: torch.Tensor, m: SCSE) -> torch.Tensor:
    """Roy et al.: x_cSE = x * sigmoid(W2 relu(W1 z + b1) + b2), x_sSE = x * sigmoid(w . x_ij + b); summed."""
    n, c, h, w = x.shape
    w1, b1 = m.cSE[1].weight[:, :, 0, 0], m.cSE[1].bias
    w2, b2 = m.cSE[3].weight[:, :, 0, 0], m.cSE[3].bias
    ws, bs = m.sSE[0].weight[0, :, 0, 0], m.sSE[0].bias[0]
    z = torch.einsum("nchw->nc", x) / (h * w)
    gate_c = sigmoid(torch.einsum("nr,cr->nc", torch.clamp(torch.einsum("nc,rc->nr", z, w1) + b1, min=0), w2) + b2)
    q = torch.zeros(n, h, w, dtype=x.dtype)
    for ch in range(c):
        q += ws[ch] * x[:, ch]
    gate_s = sigmoid(q + bs)
    return x * gate_c[:, :, None, None] + x * gate_s[:, None]


@pytest.mark.parametrize("shape", SHAPES)
def test_reference_matches_official_formula(shape):
    m = randomize_(SCSE(32, reduction=4)).eval().double()
    x = torch.randn(shape, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(m(x), official_scse(x, m), atol=1e-10, rtol=1e-10)


def test_both_branches_contribute_additively():
    """Guards against dropping a branch or combining them by max / in sequence."""
    m = randomize_(SCSE(32, reduction=4)).eval().double()
    x = torch.randn(2, 32, 6, 7, dtype=torch.float64)
    with torch.no_grad():
        out, c, s = m(x), m.cSE(x), m.sSE(x)
        torch.testing.assert_close(out, x * c + x * s, atol=1e-12, rtol=0)
        for wrong in (x * c, x * s, torch.maximum(x * c, x * s), x * c * s):
            assert (out - wrong).abs().max() > 1e-3


def test_official_state_dict_layout():
    sd = SCSE(64, reduction=16).state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == {
        "cSE.1.weight": (4, 64, 1, 1),
        "cSE.1.bias": (4,),
        "cSE.3.weight": (64, 4, 1, 1),
        "cSE.3.bias": (64,),
        "sSE.0.weight": (1, 64, 1, 1),
        "sSE.0.bias": (1,),
    }


def test_constructor_args_are_attributes():
    m = SCSE(48, reduction=8)
    assert (m.channels, m.reduction) == (48, 8)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(channels=40, reduction=16),
         "channels must be divisible by reduction=16: expected a multiple of 16, got 40"),
        (dict(channels=64, reduction=0), "reduction must be positive: expected >= 1, got 0"),
    ],
)
def test_invalid_arguments(kwargs, fragment):
    with pytest.raises(UsageError, match=fragment):
        SCSE(**kwargs)


@pytest.mark.parametrize("shape", [(1, 64, 56, 56), (2, 64, 41, 29), (3, 64, 1, 7)])
def test_deploy_equals_reference(shape):
    assert_twin_equals_reference(randomize_(SCSE(64)), SCSEDeploy(64), [shape], atol=2e-6)

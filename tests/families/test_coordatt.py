"""CoordAtt: the official formula in float64, the houqb/CoordAttention state_dict layout, the deploy twin."""

from __future__ import annotations

import pytest
import torch

from attndeploy.errors import UsageError
from attndeploy.families.coordatt import CoordAtt, CoordAttDeploy
from attndeploy.weights import randomize_
from tests.helpers import assert_twin_equals_reference

SHAPES = [(2, 32, 9, 13), (1, 32, 7, 5), (3, 32, 1, 6)]


def sigmoid(t: torch.Tensor) -> torch.Tensor:
    return 1.0 / (1.0 + torch.exp(-t))


def official_coordatt(x: torch.Tensor, m: CoordAtt) -> torch.Tensor:
    """Hou et al. eq. 4-9: z^h (mean over W), z^w (mean over H), f = h_swish(BN(F1 [z^h, z^w])),
    g^h = sigmoid(F_h f^h), g^w = sigmoid(F_w f^w), y_c(i, j) = x_c(i, j) g^h_c(i) g^w_c(j)."""
    n, c, h, w = x.shape
    zh = torch.einsum("nchw->nch", x) / w
    zw = torch.einsum("nchw->ncw", x) / h
    bn = m.bn1

    def f(z: torch.Tensor) -> torch.Tensor:  # (N, C, L) -> (N, mip, L)
        y = torch.einsum("nclf,mc->nml", z[..., None], m.conv1.weight[:, :, 0, 0]) + m.conv1.bias[:, None]
        y = (y - bn.running_mean[:, None]) / torch.sqrt(bn.running_var[:, None] + bn.eps) * bn.weight[:, None] \
            + bn.bias[:, None]
        return y * torch.clamp(torch.clamp(y + 3, min=0), max=6) / 6

    gh = sigmoid(torch.einsum("nml,cm->ncl", f(zh), m.conv_h.weight[:, :, 0, 0]) + m.conv_h.bias[:, None])
    gw = sigmoid(torch.einsum("nml,cm->ncl", f(zw), m.conv_w.weight[:, :, 0, 0]) + m.conv_w.bias[:, None])
    out = torch.empty_like(x)
    for i in range(h):
        for j in range(w):
            out[:, :, i, j] = x[:, :, i, j] * gh[:, :, i] * gw[:, :, j]
    return out


@pytest.mark.parametrize("shape", SHAPES)
def test_reference_matches_official_formula(shape):
    m = randomize_(CoordAtt(32, reduction=2)).eval().double()  # mip = 16
    x = torch.randn(shape, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(m(x), official_coordatt(x, m), atol=1e-10, rtol=1e-10)


def test_h_and_w_gates_are_not_swapped():
    m = randomize_(CoordAtt(32, reduction=2)).eval().double()
    x = torch.randn(1, 32, 5, 9, dtype=torch.float64)
    with torch.no_grad():
        swapped = CoordAtt(32, reduction=2).double().eval()
        sd = m.state_dict()
        sd["conv_h.weight"], sd["conv_w.weight"] = sd["conv_w.weight"], sd["conv_h.weight"]
        sd["conv_h.bias"], sd["conv_w.bias"] = sd["conv_w.bias"], sd["conv_h.bias"]
        swapped.load_state_dict(sd)
        assert (m(x) - swapped(x)).abs().max() > 1e-3


@pytest.mark.parametrize("channels, reduction, mip", [(64, 32, 8), (128, 32, 8), (512, 32, 16), (1024, 32, 32)])
def test_mip_is_at_least_8(channels, reduction, mip):
    assert CoordAtt(channels, reduction).mip == mip


def test_official_state_dict_layout():
    sd = CoordAtt(64, reduction=32).state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == {
        "conv1.weight": (8, 64, 1, 1),
        "conv1.bias": (8,),
        "bn1.weight": (8,),
        "bn1.bias": (8,),
        "bn1.running_mean": (8,),
        "bn1.running_var": (8,),
        "bn1.num_batches_tracked": (),
        "conv_h.weight": (64, 8, 1, 1),
        "conv_h.bias": (64,),
        "conv_w.weight": (64, 8, 1, 1),
        "conv_w.bias": (64,),
    }


def test_constructor_args_are_attributes():
    m = CoordAtt(48, reduction=4)
    assert (m.channels, m.reduction) == (48, 4)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(channels=64, reduction=0), "reduction must be positive: expected >= 1, got 0"),
        (dict(channels=0), "channels must be positive: expected >= 1, got 0"),
    ],
)
def test_invalid_arguments(kwargs, fragment):
    with pytest.raises(UsageError, match=fragment):
        CoordAtt(**kwargs)


@pytest.mark.parametrize("shape", [(1, 64, 56, 56), (2, 64, 41, 29), (3, 64, 1, 7)])
def test_deploy_equals_reference(shape):
    assert_twin_equals_reference(randomize_(CoordAtt(64)), CoordAttDeploy(64), [shape], atol=2e-6)


def test_deploy_equals_reference_in_training_mode():
    """BN batch statistics see the H and W positions together in both."""
    ref = randomize_(CoordAtt(64)).train()
    dep = CoordAttDeploy(64)
    dep.load_state_dict(ref.state_dict(), strict=True)
    dep.train()
    x = torch.randn(2, 64, 11, 7)
    torch.testing.assert_close(dep(x), ref(x), atol=2e-6, rtol=0)

"""NonLocalBlock (embedded Gaussian, arXiv:1711.07971) against an independent float64 formula."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from attndeploy.errors import UsageError
from attndeploy.families.nonlocal_block import NonLocalBlock, NonLocalBlockDeploy
from attndeploy.weights import randomize_
from tests.helpers import assert_twin_equals_reference

CONFIGS = [
    dict(channels=64),
    dict(channels=16, inter_channels=8, sub_sample=True, bn_layer=True),
    dict(channels=16, inter_channels=4, sub_sample=True, bn_layer=False),
]
IDS = ["default", "sub_sample", "sub_sample_no_bn"]


def conv1x1(conv: nn.Conv2d, t: torch.Tensor) -> torch.Tensor:
    return torch.einsum("oc,nchw->nohw", conv.weight[:, :, 0, 0], t) + conv.bias[None, :, None, None]


def maxpool2(t: torch.Tensor) -> torch.Tensor:
    """2x2, stride 2, floor: the max of the four phase slices."""
    h, w = t.shape[2] // 2 * 2, t.shape[3] // 2 * 2
    t = t[:, :, :h, :w]
    return torch.maximum(torch.maximum(t[:, :, 0::2, 0::2], t[:, :, 1::2, 0::2]),
                         torch.maximum(t[:, :, 0::2, 1::2], t[:, :, 1::2, 1::2]))


def nonlocal_formula(m: NonLocalBlock, x: torch.Tensor) -> torch.Tensor:
    """Paper eqs. 1-3, 6: y_i = sum_j softmax_j(theta_i . phi_j) g_j;  z = W y + x."""
    n, c, h, w = x.shape
    conv = lambda mod: mod[0] if isinstance(mod, nn.Sequential) else mod  # noqa: E731
    theta = conv1x1(m.theta, x).flatten(2)  # (N, Ci, HW)
    phi, g = conv1x1(conv(m.phi), x), conv1x1(conv(m.g), x)
    if m.sub_sample:
        phi, g = maxpool2(phi), maxpool2(g)
    phi, g = phi.flatten(2), g.flatten(2)  # (N, Ci, HW')
    energy = torch.einsum("nci,ncj->nij", theta, phi)
    e = torch.exp(energy - energy.amax(dim=2, keepdim=True))
    f = e / e.sum(dim=2, keepdim=True)
    y = torch.einsum("nij,ncj->nci", f, g).reshape(n, -1, h, w)
    if m.bn_layer:
        b = m.W[1]
        wy = conv1x1(m.W[0], y)
        wy = (wy - b.running_mean[:, None, None]) / torch.sqrt(b.running_var[:, None, None] + b.eps) \
            * b.weight[:, None, None] + b.bias[:, None, None]
    else:
        wy = conv1x1(m.W, y)
    return wy + x


@pytest.mark.parametrize("kwargs", CONFIGS, ids=IDS)
def test_matches_official_formula_float64(kwargs):
    m = randomize_(NonLocalBlock(**kwargs)).eval().double()
    for i, (h, w) in enumerate([(9, 7), (4, 11), (2, 3)]):
        x = torch.randn(2, kwargs["channels"], h, w, generator=torch.Generator().manual_seed(i), dtype=torch.float64)
        with torch.no_grad():
            torch.testing.assert_close(m(x), nonlocal_formula(m, x), atol=1e-10, rtol=1e-10)


def test_official_state_dict_keys_and_shapes():
    bn = {f"W.1.{k}": (64,) for k in ("weight", "bias", "running_mean", "running_var")}
    expected = {
        "g.weight": (32, 64, 1, 1), "g.bias": (32,),
        "W.0.weight": (64, 32, 1, 1), "W.0.bias": (64,), **bn, "W.1.num_batches_tracked": (),
        "theta.weight": (32, 64, 1, 1), "theta.bias": (32,),
        "phi.weight": (32, 64, 1, 1), "phi.bias": (32,),
    }
    sd = NonLocalBlock(64).state_dict()
    assert list(sd) == list(expected)  # official registration order: g, W, theta, phi
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected
    assert list(NonLocalBlock(16, sub_sample=True, bn_layer=False).state_dict()) == [
        "g.0.weight", "g.0.bias", "W.weight", "W.bias", "theta.weight", "theta.bias", "phi.0.weight", "phi.0.bias",
    ]


def test_inter_channels_default_and_minimum():
    assert NonLocalBlock(64).inter_channels == 32
    assert NonLocalBlock(1).inter_channels == 1
    assert NonLocalBlock(64, inter_channels=16).theta.out_channels == 16


@pytest.mark.parametrize("kwargs", CONFIGS, ids=IDS)
def test_official_init_is_identity(kwargs):
    m = NonLocalBlock(**kwargs)
    x = torch.randn(2, kwargs["channels"], 6, 5)
    with torch.no_grad():
        torch.testing.assert_close(m.eval()(x), x)


def test_sub_sample_floors_odd_sizes():
    m = randomize_(NonLocalBlock(16, sub_sample=True)).eval()
    seen = []
    m.phi.register_forward_hook(lambda mod, args, out: seen.append(out.shape))
    with torch.no_grad():
        assert m(torch.randn(1, 16, 7, 5)).shape == (1, 16, 7, 5)
    assert seen == [(1, 8, 3, 2)]


@pytest.mark.parametrize("kwargs,rule", [
    (dict(channels=0), "channels must be positive"),
    (dict(channels=8, inter_channels=0), "inter_channels must be positive"),
])
def test_input_validation(kwargs, rule):
    with pytest.raises(UsageError) as info:
        NonLocalBlock(**kwargs)
    assert rule in str(info.value) and "expected" in str(info.value) and "got" in str(info.value)


@pytest.mark.parametrize("kwargs", CONFIGS, ids=IDS)
@pytest.mark.parametrize("n,h,w", [(1, 28, 28), (2, 13, 9), (3, 10, 21)])
def test_deploy_twin_equals_reference(kwargs, n, h, w):
    assert_twin_equals_reference(randomize_(NonLocalBlock(**kwargs), 1), NonLocalBlockDeploy(**kwargs),
                                 [(n, kwargs["channels"], h, w)], atol=1e-5, rtol=1e-4, seed=5)

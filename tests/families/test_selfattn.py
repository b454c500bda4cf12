"""SelfAttention (SAGAN, arXiv:1805.08318) against an independent float64 formula."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from attndeploy.errors import UsageError
from attndeploy.families.selfattn import SelfAttention, SelfAttentionDeploy
from attndeploy.weights import randomize_
from tests.helpers import assert_twin_equals_reference


def sagan_formula(m: SelfAttention, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """beta_{j,i} = softmax_i(f(x_i)^T g(x_j)); o_j = sum_i beta_{j,i} h(x_i); y = gamma o + x."""
    n, c, h, w = x.shape
    xs = x.reshape(n, c, h * w)
    proj = lambda conv: torch.einsum("oc,ncp->nop", conv.weight[:, :, 0, 0], xs) + conv.bias[None, :, None]  # noqa: E731
    q, k, v = proj(m.query_conv), proj(m.key_conv), proj(m.value_conv)
    energy = torch.einsum("nci,ncj->nij", q, k)  # (N, HW, HW)
    e = torch.exp(energy - energy.amax(dim=2, keepdim=True))
    attention = e / e.sum(dim=2, keepdim=True)
    out = torch.einsum("ncj,nij->nci", v, attention).reshape(n, c, h, w)
    return m.gamma[0] * out + x, attention


@pytest.mark.parametrize("channels,shapes", [(64, [(2, 9, 7), (1, 4, 11)]), (16, [(3, 5, 6), (2, 1, 1)])])
def test_matches_official_formula_float64(channels, shapes):
    m = randomize_(SelfAttention(channels, return_attention=True)).eval().double()
    for i, (n, h, w) in enumerate(shapes):
        x = torch.randn(n, channels, h, w, generator=torch.Generator().manual_seed(i), dtype=torch.float64)
        with torch.no_grad():
            y, attn = m(x)
        y_ref, attn_ref = sagan_formula(m, x)
        torch.testing.assert_close(y, y_ref, atol=1e-10, rtol=1e-10)
        torch.testing.assert_close(attn, attn_ref, atol=1e-10, rtol=1e-10)


def test_official_state_dict_keys_and_shapes():
    expected = {
        "gamma": (1,),
        "query_conv.weight": (8, 64, 1, 1), "query_conv.bias": (8,),
        "key_conv.weight": (8, 64, 1, 1), "key_conv.bias": (8,),
        "value_conv.weight": (64, 64, 1, 1), "value_conv.bias": (64,),
    }
    sd = SelfAttention(64).state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected


def test_gamma_is_a_trainable_parameter_initialised_to_zero():
    m = SelfAttention(64)
    assert isinstance(m.gamma, nn.Parameter) and m.gamma.requires_grad
    assert "gamma" in dict(m.named_parameters())
    assert m.gamma.item() == 0.0
    x = torch.randn(2, 64, 5, 7)
    with torch.no_grad():
        torch.testing.assert_close(m.eval()(x), x)
    sd = SelfAttention(64).state_dict()
    sd["gamma"] = torch.tensor([0.7])
    m.load_state_dict(sd, strict=True)
    assert m.gamma.item() == pytest.approx(0.7)


@pytest.mark.parametrize("cls", [SelfAttention, SelfAttentionDeploy])
def test_return_attention_outputs(cls):
    m = randomize_(cls(32, return_attention=True)).eval()
    with torch.no_grad():
        y, attn = m(torch.randn(2, 32, 5, 3))
    assert y.shape == (2, 32, 5, 3) and attn.shape == (2, 15, 15)
    torch.testing.assert_close(attn.sum(dim=-1), torch.ones(2, 15))
    assert isinstance(randomize_(cls(32)).eval()(torch.randn(1, 32, 4, 4)), torch.Tensor)


@pytest.mark.parametrize("channels,rule", [
    (4, "channels must be at least 8"),
    (12, "channels must be divisible by the query/key reduction=8"),
])
def test_input_validation(channels, rule):
    with pytest.raises(UsageError) as info:
        SelfAttention(channels)
    assert rule in str(info.value) and "expected" in str(info.value) and "got" in str(info.value)


@pytest.mark.parametrize("return_attention", [False, True])
@pytest.mark.parametrize("n,h,w", [(1, 28, 28), (2, 13, 9), (3, 10, 21)])
def test_deploy_twin_equals_reference(return_attention, n, h, w):
    assert_twin_equals_reference(randomize_(SelfAttention(64, return_attention=return_attention), 1),
                                 SelfAttentionDeploy(64, return_attention=return_attention), [(n, 64, h, w)],
                                 atol=2e-6, rtol=1e-5, seed=5)

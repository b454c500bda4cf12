"""SelectiveKernel (SKConv, arXiv:1903.06586) against an independent float64 formula."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attndeploy.errors import UsageError
from attndeploy.families.sk import SelectiveKernel, SelectiveKernelDeploy
from attndeploy.weights import randomize_
from tests.helpers import assert_twin_equals_reference


def bn(t: torch.Tensor, b: nn.BatchNorm2d) -> torch.Tensor:
    """Eval BatchNorm on (N, C, ...) written out."""
    shape = (1, -1) + (1,) * (t.dim() - 2)
    scale = b.weight / torch.sqrt(b.running_var + b.eps)
    return (t - b.running_mean.view(shape)) * scale.view(shape) + b.bias.view(shape)


def grouped_dilated_conv3x3(x, w, stride: int, dilation: int, groups: int) -> torch.Tensor:
    """3x3 conv, padding = dilation: a sum over the 9 taps of per-group channel contractions."""
    n, c, h, wd = x.shape
    co = w.shape[0]
    ho, wo = (h - 1) // stride + 1, (wd - 1) // stride + 1
    xp = F.pad(x, (dilation,) * 4)
    out = torch.zeros(n, co, ho, wo, dtype=x.dtype)
    wg = w.view(groups, co // groups, c // groups, 3, 3)
    for i in range(3):
        for j in range(3):
            patch = xp[:, :, i * dilation: i * dilation + (ho - 1) * stride + 1: stride,
                       j * dilation: j * dilation + (wo - 1) * stride + 1: stride]
            patch = patch.reshape(n, groups, c // groups, ho, wo)
            out += torch.einsum("goc,ngchw->ngohw", wg[..., i, j], patch).reshape(n, co, ho, wo)
    return out


def sk_formula(m: SelectiveKernel, x: torch.Tensor) -> torch.Tensor:
    """Paper eqs. 1-6: U = sum U_i; s = GAP(U); z = ReLU(BN(W_z s)); a = softmax_branches(A z); V = sum a_i U_i."""
    branches = []
    for i, seq in enumerate(m.conv):
        u = grouped_dilated_conv3x3(x, seq[0].weight, m.stride, 1 + i, m.groups)
        branches.append(torch.clamp(bn(u, seq[1]), min=0))
    u = sum(branches)
    s = u.mean(dim=(2, 3))  # (N, C_out)
    z = torch.clamp(bn(s @ m.fc1[0].weight[:, :, 0, 0].T, m.fc1[1]), min=0)  # (N, d)
    logits = (z @ m.fc2.weight[:, :, 0, 0].T).view(x.shape[0], m.num_branches, m.out_channels)
    e = torch.exp(logits - logits.max(dim=1, keepdim=True).values)
    a = e / e.sum(dim=1, keepdim=True)  # (N, M, C_out), sums to 1 over the branches
    return sum(a[:, i, :, None, None] * branches[i] for i in range(m.num_branches))


CONFIGS = [
    (dict(channels=64), [(2, 64, 9, 7), (1, 64, 6, 11)]),
    (dict(channels=32, out_channels=64, num_branches=3, groups=8, reduction=4, min_dim=8, stride=2),
     [(2, 32, 9, 7), (1, 32, 10, 5)]),
]


@pytest.mark.parametrize("kwargs,shapes", CONFIGS)
def test_matches_official_formula_float64(kwargs, shapes):
    m = randomize_(SelectiveKernel(**kwargs)).eval().double()
    for i, shape in enumerate(shapes):
        x = torch.randn(shape, generator=torch.Generator().manual_seed(i), dtype=torch.float64)
        with torch.no_grad():
            torch.testing.assert_close(m(x), sk_formula(m, x), atol=1e-10, rtol=1e-10)


def test_official_state_dict_keys_and_shapes():
    expected = {
        "conv.0.0.weight": (64, 2, 3, 3),
        "conv.0.1.weight": (64,), "conv.0.1.bias": (64,), "conv.0.1.running_mean": (64,),
        "conv.0.1.running_var": (64,), "conv.0.1.num_batches_tracked": (),
        "conv.1.0.weight": (64, 2, 3, 3),
        "conv.1.1.weight": (64,), "conv.1.1.bias": (64,), "conv.1.1.running_mean": (64,),
        "conv.1.1.running_var": (64,), "conv.1.1.num_batches_tracked": (),
        "fc1.0.weight": (32, 64, 1, 1),
        "fc1.1.weight": (32,), "fc1.1.bias": (32,), "fc1.1.running_mean": (32,),
        "fc1.1.running_var": (32,), "fc1.1.num_batches_tracked": (),
        "fc2.weight": (128, 32, 1, 1),
    }
    sd = SelectiveKernel(64).state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected


def test_branch_dilations_follow_official_layout():
    m = SelectiveKernel(64, num_branches=3)
    assert [(c[0].dilation, c[0].padding) for c in m.conv] == [((1, 1), (1, 1)), ((2, 2), (2, 2)), ((3, 3), (3, 3))]
    assert m.d == 32 and SelectiveKernel(1024).d == 64


def test_softmax_is_across_branches_not_channels():
    m = randomize_(SelectiveKernel(64, num_branches=3)).eval()
    seen = []
    m.softmax.register_forward_hook(lambda mod, args, out: seen.append(out))
    with torch.no_grad():
        m(torch.randn(2, 64, 8, 8))
    (a,) = seen
    assert a.shape[:3] == (2, 3, 64)
    torch.testing.assert_close(a.sum(dim=1), torch.ones_like(a.sum(dim=1)))
    assert not torch.allclose(a.sum(dim=2), torch.ones_like(a.sum(dim=2)))


@pytest.mark.parametrize("cls", [SelectiveKernel, SelectiveKernelDeploy])
def test_batch_of_one_keeps_batch_axis_and_matches_batched(cls):
    m = randomize_(cls(64)).eval()
    x = torch.randn(3, 64, 7, 9)
    with torch.no_grad():
        full = m(x)
        singles = [m(x[i:i + 1]) for i in range(3)]
    assert singles[0].shape == (1, 64, 7, 9)
    torch.testing.assert_close(torch.cat(singles), full, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("cls", [SelectiveKernel, SelectiveKernelDeploy])
def test_no_fixed_device_or_dtype_accumulators(cls):
    m = randomize_(cls(64)).eval().double()
    with torch.no_grad():
        assert m(torch.randn(1, 64, 5, 5, dtype=torch.float64)).dtype == torch.float64
    meta = cls(64).eval().to("meta")
    assert meta(torch.empty(2, 64, 5, 5, device="meta")).device.type == "meta"


@pytest.mark.parametrize("kwargs,rule", [
    (dict(channels=48), "channels must be divisible by groups=32"),
    (dict(channels=64, out_channels=80), "out_channels must be divisible by groups=32"),
    (dict(channels=64, num_branches=0), "num_branches must be at least 1"),
    (dict(channels=64, stride=0), "stride must be positive"),
])
def test_input_validation(kwargs, rule):
    with pytest.raises(UsageError) as info:
        SelectiveKernel(**kwargs)
    assert rule in str(info.value) and "expected" in str(info.value) and "got" in str(info.value)


def test_constructor_args_stored():
    m = SelectiveKernel(32, out_channels=64, num_branches=3, groups=8, reduction=4, min_dim=8, stride=2)
    assert (m.channels, m.out_channels, m.num_branches, m.groups, m.reduction, m.min_dim, m.stride) == \
        (32, 64, 3, 8, 4, 8, 2)
    assert SelectiveKernel(64).out_channels == 64


@pytest.mark.parametrize("kwargs", [c[0] for c in CONFIGS])
@pytest.mark.parametrize("shape", [(1, 0, 56, 56), (2, 0, 13, 9), (3, 0, 1, 1)])
def test_deploy_twin_equals_reference(kwargs, shape):
    dep = SelectiveKernelDeploy(**kwargs)
    assert_twin_equals_reference(randomize_(SelectiveKernel(**kwargs)), dep,
                                 [(shape[0], kwargs["channels"], *shape[2:])], atol=2e-6, rtol=1e-5)
    assert isinstance(copy.deepcopy(dep), SelectiveKernel)

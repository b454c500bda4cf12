"""ACmix (arXiv:2111.14556) against an independent float64 formula with explicit window loops."""

from __future__ import annotations

import math
from contextlib import contextmanager

import pytest
import torch
from torch import nn

from attndeploy.errors import UsageError
from attndeploy.families.acmix import ACmix, ACmixDeploy
from attndeploy.weights import randomize_
from tests.helpers import assert_onnx_matches_eager, assert_twin_equals_reference

SMALL = dict(channels=8, out_channels=8, head=2, kernel_att=3, kernel_conv=3)


@contextmanager
def default_dtype(dtype: torch.dtype):
    """The official position() builds its grid in the default dtype (linspace without dtype)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def conv1x1(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """x (C, H, W) -> (C_out, H, W)."""
    out = torch.einsum("oc,chw->ohw", conv.weight[:, :, 0, 0], x)
    return out + conv.bias[:, None, None] if conv.bias is not None else out


def reflect(i: int, n: int) -> int:
    """ReflectionPad index: -1 -> 1, n -> n - 2."""
    return -i if i < 0 else 2 * (n - 1) - i if i > n - 1 else i


def acmix_formula(m: ACmix, x: torch.Tensor) -> torch.Tensor:
    """rate1 * window attention + rate2 * shift conv, one sample and one pixel at a time."""
    n, _, h, w = x.shape
    s, head, hd, ka, kc = m.stride, m.head, m.head_dim, m.kernel_att, m.kernel_conv
    ho, wo, pa, pc = math.ceil(h / s), math.ceil(w / s), ka // 2, kc // 2
    lin = lambda size: [-1.0 + 2.0 * i / (size - 1) if size > 1 else -1.0 for i in range(size)]  # noqa: E731
    loc = torch.stack([torch.tensor(lin(w), dtype=x.dtype).expand(h, w),
                       torch.tensor(lin(h), dtype=x.dtype)[:, None].expand(h, w)])  # (2, h, w): [x, y]
    pe = conv1x1(m.conv_p, loc)  # (head_dim, h, w)
    fc = m.fc.weight[:, :, 0, 0]  # (kc*kc, 3*head)
    wd = m.dep_conv.weight  # (C_out, kc*kc, kc, kc)
    out = torch.zeros(n, m.out_channels, ho, wo, dtype=x.dtype)
    for b in range(n):
        q, k, v = conv1x1(m.conv1, x[b]), conv1x1(m.conv2, x[b]), conv1x1(m.conv3, x[b])
        # attention: logits q_s . (k_j + pe_i - pe_j) over the reflected window j of pixel i
        for hh in range(head):
            sl = slice(hh * hd, (hh + 1) * hd)
            for yo in range(ho):
                for xo in range(wo):
                    y, xx = yo * s, xo * s
                    qi = q[sl, y, xx] * hd ** -0.5
                    logits, values = [], []
                    for dy in range(-pa, pa + 1):
                        for dx in range(-pa, pa + 1):
                            ry, rx = reflect(y + dy, h), reflect(xx + dx, w)
                            logits.append(torch.dot(qi, k[sl, ry, rx] + pe[:, y, xx] - pe[:, ry, rx]))
                            values.append(v[sl, ry, rx])
                    a = torch.softmax(torch.stack(logits), 0)
                    out[b, sl, yo, xo] += m.rate1[0] * (a[:, None] * torch.stack(values)).sum(0)
        # convolution: f[d*kc^2 + j] = sum_(t, hh) fc[j, t*head + hh] * qkv_t[hh*hd + d]; grouped kc x kc conv
        qkv = torch.stack([q, k, v]).view(3 * head, hd, h, w)
        f = torch.einsum("jt,tdhw->djhw", fc, qkv).reshape(hd * kc * kc, h, w)
        f = torch.nn.functional.pad(f, (pc, pc, pc, pc))
        per_group = m.out_channels // hd
        for o in range(m.out_channels):
            g = o // per_group
            for yo in range(ho):
                for xo in range(wo):
                    patch = f[g * kc * kc:(g + 1) * kc * kc, yo * s:yo * s + kc, xo * s:xo * s + kc]
                    out[b, o, yo, xo] += m.rate2[0] * (wd[o] * patch).sum()
    return out


@pytest.mark.parametrize("kwargs,shape", [
    (SMALL, (1, 8, 6, 7)),
    (SMALL, (2, 8, 5, 4)),
    (dict(SMALL, stride=2), (1, 8, 6, 8)),
    (dict(SMALL, stride=2), (1, 8, 6, 7)),
    (dict(channels=6, out_channels=8, head=2, kernel_att=7, kernel_conv=3), (1, 6, 4, 5)),
], ids=["k3", "k3-batch2", "k3-stride2", "k3-stride2-odd", "k7-min-hw"])
def test_matches_official_formula_float64(kwargs, shape):
    m = randomize_(ACmix(**kwargs), 1).eval().double()
    x = torch.randn(shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    with torch.no_grad(), default_dtype(torch.float64):
        got = m(x)
        want = acmix_formula(m, x)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)


def test_official_state_dict_layout():
    sd = ACmix(64, 64).state_dict()
    assert [(k, tuple(v.shape)) for k, v in sd.items()] == [
        ("rate1", (1,)), ("rate2", (1,)),
        ("conv1.weight", (64, 64, 1, 1)), ("conv1.bias", (64,)),
        ("conv2.weight", (64, 64, 1, 1)), ("conv2.bias", (64,)),
        ("conv3.weight", (64, 64, 1, 1)), ("conv3.bias", (64,)),
        ("conv_p.weight", (16, 2, 1, 1)), ("conv_p.bias", (16,)),
        ("fc.weight", (9, 12, 1, 1)),
        ("dep_conv.weight", (64, 9, 3, 3)),
    ]
    assert list(ACmixDeploy(64, 64).state_dict()) == list(sd)


def test_official_init_no_dep_conv_bias_and_trainable_shift_kernel():
    m = ACmix(16, 16, head=4)
    assert m.dep_conv.bias is None  # the official reset_parameters sets it to None
    assert m.rate1.item() == 0.5 and m.rate2.item() == 0.5
    assert isinstance(m.rate1, nn.Parameter) and isinstance(m.rate2, nn.Parameter)
    onehot = torch.zeros(9, 3, 3)
    for i in range(9):
        onehot[i, i // 3, i % 3] = 1.0
    assert torch.equal(m.dep_conv.weight, onehot.repeat(16, 1, 1, 1))
    m(torch.randn(1, 16, 5, 5)).sum().backward()
    assert m.dep_conv.weight.requires_grad and m.dep_conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("zeroed", ["rate1", "rate2"])
def test_each_path_alone_matches_formula(zeroed):
    """Attention (q scaled by head_dim**-0.5) and conv path (q unscaled) checked in isolation."""
    m = randomize_(ACmix(**SMALL), 4).eval().double()
    with torch.no_grad():
        getattr(m, zeroed).zero_()
    x = torch.randn(1, 8, 5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad(), default_dtype(torch.float64):
        torch.testing.assert_close(m(x), acmix_formula(m, x), atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("kwargs,shapes", [
    (dict(channels=64, out_channels=64), [(1, 64, 12, 9), (2, 64, 4, 4), (1, 64, 7, 13)]),
    (dict(channels=64, out_channels=64, stride=2), [(1, 64, 12, 9), (2, 64, 5, 4), (1, 64, 16, 16)]),
    (dict(channels=16, out_channels=32, head=8, kernel_att=5, kernel_conv=5, stride=3), [(1, 16, 11, 7)]),
    (dict(channels=8, out_channels=8, head=2, kernel_att=1), [(1, 8, 1, 5), (1, 8, 3, 1)]),
])
def test_deploy_twin_equals_reference(kwargs, shapes):
    assert_twin_equals_reference(randomize_(ACmix(**kwargs), 5), ACmixDeploy(**kwargs), shapes, atol=1e-5, rtol=1e-4,
                                 seed=6)


def test_deploy_has_no_unfold_or_linspace():
    twin = ACmixDeploy(64, 64).eval()
    calls = []
    hooks = [twin.unfold.register_forward_hook(lambda *a: calls.append("unfold"))]
    real_linspace = torch.linspace
    try:
        torch.linspace = lambda *a, **k: calls.append("linspace") or real_linspace(*a, **k)
        twin(torch.randn(1, 64, 8, 8))
    finally:
        torch.linspace = real_linspace
        for h in hooks:
            h.remove()
    assert calls == []


class _ReadsOutputShape(nn.Module):
    """The twin, then a read of its output's H, W (as the host FPN's `interpolate(size=c.shape[-2:])`)."""

    def __init__(self, twin: nn.Module) -> None:
        super().__init__()
        self.twin = twin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.twin(x)
        return y + torch.nn.functional.interpolate(y[:, :, ::2, ::2], size=y.shape[-2:], mode="nearest")


@pytest.mark.parametrize("stride", [1, 2])
def test_deploy_twin_output_shape_stays_dynamic_in_torchscript_export(stride, tmp_path):
    """Regression: with `unflatten` the TorchScript exporter kept the traced H x W for the twin's
    output, folded the downstream shape read to a Constant, and onnxruntime failed at other sizes."""
    import warnings

    model = _ReadsOutputShape(randomize_(ACmixDeploy(**dict(SMALL, stride=stride)), 7)).eval()
    path = tmp_path / "acmix_reader.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(1, 8, 8, 8),), str(path), dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["y"], do_constant_folding=True,
                          dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}, "y": {0: "n", 2: "ho", 3: "wo"}})
    assert_onnx_matches_eager(path, model, [(1, 8, 8, 8), (2, 8, 12, 10), (1, 8, 9, 7)], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kwargs,rule", [
    (dict(channels=8, out_channels=10, head=4), "out_channels must be divisible by head=4"),
    (dict(channels=8, out_channels=8, kernel_att=6), "kernel_att must be a positive odd number"),
    (dict(channels=8, out_channels=8, kernel_conv=4), "kernel_conv must be a positive odd number"),
    (dict(channels=8, out_channels=8, dilation=2), "dilation must be 1"),
    (dict(channels=8, out_channels=8, stride=0), "stride must be positive"),
    (dict(channels=8, out_channels=2, head=4), "out_channels must be at least head"),
])
def test_invalid_arguments_name_rule_expected_actual(kwargs, rule):
    with pytest.raises(UsageError) as err:
        ACmix(**kwargs)
    assert rule in str(err.value) and "expected" in str(err.value) and "got" in str(err.value)

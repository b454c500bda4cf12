"""MLCA: the official formula in float64, the official state_dict, validation, the deploy twin."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from attndeploy.errors import UsageError
from attndeploy.families.mlca import MLCA, MLCADeploy, eca_kernel_size
from attndeploy.weights import randomize_
from tests.helpers import assert_twin_equals_reference


def _bins(out_size: int, in_size: int) -> list[tuple[int, int]]:
    return [(math.floor(i * in_size / out_size), math.ceil((i + 1) * in_size / out_size)) for i in range(out_size)]


def _conv1d(seq: np.ndarray, w: np.ndarray) -> np.ndarray:
    k, pad = len(w), (len(w) - 1) // 2
    out = np.zeros_like(seq)
    for t in range(len(seq)):
        for u in range(k):
            src = t + u - pad
            if 0 <= src < len(seq):
                out[t] += w[u] * seq[src]
    return out


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-v))


def _official_formula(m: MLCA, x: np.ndarray) -> np.ndarray:
    """MLCA written out: s×s bins, (bin, channel) sequence, ECA convs, mix, pool back up."""
    n, c, h, w = x.shape
    s, lw = m.local_size, m.local_weight
    wl = m.conv_local.weight.detach().double().numpy().ravel()
    wg = m.conv.weight.detach().double().numpy().ravel()
    out = np.zeros_like(x)
    for b in range(n):
        local = np.zeros((c, s, s))
        for i, (h0, h1) in enumerate(_bins(s, h)):
            for j, (w0, w1) in enumerate(_bins(s, w)):
                local[:, i, j] = x[b, :, h0:h1, w0:w1].mean(axis=(1, 2))
        glob = local.mean(axis=(1, 2))  # the mean of the bins, not of x
        seq = np.array([local[ch, i, j] for i in range(s) for j in range(s) for ch in range(c)])
        y_local = _conv1d(seq, wl)
        att_local = np.zeros((c, s, s))
        for i in range(s):
            for j in range(s):
                for ch in range(c):
                    att_local[ch, i, j] = _sigmoid(y_local[(i * s + j) * c + ch])
        att_global = _sigmoid(_conv1d(glob, wg))
        mix = att_global[:, None, None] * (1 - lw) + att_local * lw
        att = np.zeros((c, h, w))
        for r, (i0, i1) in enumerate(_bins(h, s)):
            for q, (j0, j1) in enumerate(_bins(w, s)):
                att[:, r, q] = mix[:, i0:i1, j0:j1].mean(axis=(1, 2))
        out[b] = x[b] * att
    return out


@pytest.mark.parametrize(
    "channels, kwargs, shape",
    [
        (16, {}, (2, 16, 13, 9)),
        (32, {}, (1, 32, 4, 7)),  # H, W < local_size: the last pool is a downsampling
        (128, dict(local_size=3, local_weight=0.3), (1, 128, 11, 6)),  # k = 5
        (8, dict(local_size=4, gamma=1, b=0), (2, 8, 1, 9)),
    ],
)
def test_official_formula_float64(channels: int, kwargs: dict, shape: tuple[int, ...]) -> None:
    m = randomize_(MLCA(channels, **kwargs)).eval().double()
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        y = m(x).numpy()
    np.testing.assert_allclose(y, _official_formula(m, x.numpy()), rtol=0, atol=1e-10)


def test_official_state_dict_keys() -> None:
    sd = MLCA(64).state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == {"conv.weight": (1, 1, 3), "conv_local.weight": (1, 1, 3)}
    m = MLCA(64)
    assert m.conv.bias is None and m.conv_local.bias is None
    assert m.conv.padding == (1,) and m.conv_local.padding == (1,)


@pytest.mark.parametrize("channels, k", [(8, 3), (16, 3), (64, 3), (128, 5), (256, 5), (1024, 5), (2048, 7)])
def test_eca_kernel_size(channels: int, k: int) -> None:
    assert eca_kernel_size(channels) == k
    assert MLCA(channels).conv_local.kernel_size == (k,)


def test_global_branch_is_mean_of_bins_not_of_x() -> None:
    """With local_weight=0 the attention is sigmoid(conv(global)); global is the mean of the 5×5 bins."""
    m = randomize_(MLCA(16, local_weight=0.0)).eval().double()
    x = torch.rand(1, 16, 7, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) + 0.5
    with torch.no_grad():
        att = (m(x) / x)[:, :, 0, 0]
        bins_mean = torch.nn.functional.adaptive_avg_pool2d(x, 5).mean((2, 3))
        expected = torch.sigmoid(m.conv(bins_mean.unsqueeze(1))).squeeze(1)
        simplified = torch.sigmoid(m.conv(x.mean((2, 3)).unsqueeze(1))).squeeze(1)
    torch.testing.assert_close(att, expected, rtol=0, atol=1e-12)
    assert (att - simplified).abs().max() > 1e-6


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(channels=0), ["channels", ">= 1", "got 0"]),
        (dict(channels=64, local_size=0), ["local_size", ">= 1", "got 0"]),
        (dict(channels=64, gamma=0), ["gamma", "> 0", "got 0"]),
        (dict(channels=64, local_size=2.5), ["local_size", ">= 1", "got 2.5"]),
    ],
)
def test_validation(kwargs: dict, words: list[str]) -> None:
    with pytest.raises(UsageError) as err:
        MLCA(**kwargs)
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize("shape", [(1, 64, 56, 56), (2, 64, 41, 29), (3, 64, 20, 71), (1, 64, 3, 4), (2, 64, 1, 1)])
def test_deploy_matches_reference(shape: tuple[int, ...]) -> None:
    assert_twin_equals_reference(randomize_(MLCA(64)), MLCADeploy(64), [shape], atol=2e-6, rtol=1e-5)

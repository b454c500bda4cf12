"""SPD-Conv: the official formula in float64, the official state_dict, slice order, validation, the twin."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attndeploy.errors import UsageError
from attndeploy.families.spd import SPDConv, SPDConvDeploy, space_to_depth
from attndeploy.weights import randomize_
from tests.helpers import assert_twin_equals_reference

# (row offset, column offset) of channel block q, as in the official torch.cat order.
OFFICIAL_OFFSETS = [(0, 0), (1, 0), (0, 1), (1, 1)]


def _official_formula(m: SPDConv, x: np.ndarray) -> np.ndarray:
    n, c, h, w = x.shape
    ho, wo = h // 2, w // 2
    s2d = np.zeros((n, 4 * c, ho, wo))
    for q, (dh, dw) in enumerate(OFFICIAL_OFFSETS):
        for i in range(ho):
            for j in range(wo):
                s2d[:, q * c:(q + 1) * c, i, j] = x[:, :, 2 * i + dh, 2 * j + dw]
    weight = m.conv.conv.weight.detach().double().numpy()
    k = weight.shape[-1]
    p = k // 2
    padded = np.zeros((n, 4 * c, ho + 2 * p, wo + 2 * p))
    padded[:, :, p:p + ho, p:p + wo] = s2d
    y = np.zeros((n, weight.shape[0], ho, wo))
    for u in range(k):
        for v in range(k):
            y += np.einsum("oc,nchw->nohw", weight[:, :, u, v], padded[:, :, u:u + ho, v:v + wo])
    bn = m.conv.bn
    mean, var = bn.running_mean.double().numpy(), bn.running_var.double().numpy()
    gamma, beta = bn.weight.detach().double().numpy(), bn.bias.detach().double().numpy()
    y = (y - mean[:, None, None]) / np.sqrt(var[:, None, None] + bn.eps) * gamma[:, None, None] + beta[:, None, None]
    return y / (1.0 + np.exp(-y))


@pytest.mark.parametrize(
    "args, shape",
    [((3, 5, 3), (2, 3, 6, 10)), ((4, 6, 1), (1, 4, 14, 2)), ((2, 3, 5), (1, 2, 10, 6))],
)
def test_official_formula_float64(args: tuple[int, int, int], shape: tuple[int, ...]) -> None:
    m = randomize_(SPDConv(*args)).eval().double()
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        y = m(x).numpy()
    assert y.shape == (shape[0], args[1], shape[2] // 2, shape[3] // 2)
    np.testing.assert_allclose(y, _official_formula(m, x.numpy()), rtol=0, atol=1e-10)


def test_official_state_dict_keys() -> None:
    sd = SPDConv(64, 128).state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == {
        "conv.conv.weight": (128, 256, 3, 3),
        "conv.bn.weight": (128,),
        "conv.bn.bias": (128,),
        "conv.bn.running_mean": (128,),
        "conv.bn.running_var": (128,),
        "conv.bn.num_batches_tracked": (),
    }
    m = SPDConv(64, 128)
    assert m.conv.conv.bias is None and m.conv.conv.stride == (1, 1) and m.conv.conv.padding == (1, 1)
    assert isinstance(m.conv.act, torch.nn.SiLU) and m.conv.bn.eps == 1e-5


def test_slice_order_is_official_not_pixel_unshuffle() -> None:
    c = 3
    x = torch.arange(2 * c * 4 * 6, dtype=torch.float64).reshape(2, c, 4, 6)
    y = space_to_depth(x)
    for q, (dh, dw) in enumerate(OFFICIAL_OFFSETS):
        assert torch.equal(y[:, q * c:(q + 1) * c], x[:, :, dh::2, dw::2])
    unshuffled = F.pixel_unshuffle(x, 2)  # channel c*4 + dh*2 + dw
    assert not torch.equal(y, unshuffled)
    perm = [ch * 4 + dh * 2 + dw for dh, dw in OFFICIAL_OFFSETS for ch in range(c)]
    assert torch.equal(y, unshuffled[:, perm])


@pytest.mark.parametrize("module_cls", [SPDConv, SPDConvDeploy])
@pytest.mark.parametrize("shape, words", [
    ((1, 64, 41, 56), "spd needs even H and W: expected even H, W, got H=41 in (1, 64, 41, 56)"),
    ((2, 64, 56, 29), "spd needs even H and W: expected even H, W, got W=29 in (2, 64, 56, 29)"),
])
def test_odd_size_names_the_shape(module_cls: type, shape: tuple[int, ...], words: str) -> None:
    with pytest.raises(UsageError) as err:
        module_cls(64, 128)(torch.zeros(shape))
    assert str(err.value) == words


@pytest.mark.parametrize("kwargs, words", [
    (dict(channels=0, out_channels=8), ["channels", ">= 1", "got 0"]),
    (dict(channels=4, out_channels=-1), ["out_channels", ">= 1", "got -1"]),
    (dict(channels=4, out_channels=8, kernel_size=2), ["kernel_size", "odd", "got 2"]),
])
def test_validation(kwargs: dict, words: list[str]) -> None:
    with pytest.raises(UsageError) as err:
        SPDConv(**kwargs)
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize("shape", [(1, 64, 56, 56), (2, 64, 42, 30), (3, 64, 20, 72), (1, 64, 2, 2)])
def test_deploy_matches_reference(shape: tuple[int, ...]) -> None:
    assert_twin_equals_reference(randomize_(SPDConv(64, 128)), SPDConvDeploy(64, 128), [shape], atol=2e-6, rtol=1e-5)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_check_is_skipped_while_tracing() -> None:
    dep = SPDConvDeploy(4, 8).eval()
    traced = torch.jit.trace(dep, torch.randn(1, 4, 6, 8))
    x = torch.randn(2, 4, 10, 4)
    torch.testing.assert_close(traced(x), dep(x))

"""Deformable conv block: explicit bilinear sampling in float64, the state_dict, zero init, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attndeploy.errors import UsageError
from attndeploy.families.deformconv import DeformConvBlock, DeformConvBlockDeploy
from tests.helpers import assert_twin_equals_reference


def _randomized(module: DeformConvBlock, seed: int = 0, offset_scale: float = 0.6) -> DeformConvBlock:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            scale = offset_scale if name.startswith("offset_conv") else 0.5
            p.copy_(torch.randn(p.shape, generator=gen) * scale + 0.05)
    return module.eval()


def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pad: int, dil: int) -> np.ndarray:
    """Plain dense conv (groups=1) by explicit taps."""
    n, c, h, wd = x.shape
    k = w.shape[-1]
    ho, wo = (h + 2 * pad - dil * (k - 1) - 1) // stride + 1, (wd + 2 * pad - dil * (k - 1) - 1) // stride + 1
    xp = np.zeros((n, c, h + 2 * pad, wd + 2 * pad))
    xp[:, :, pad:pad + h, pad:pad + wd] = x
    out = np.zeros((n, w.shape[0], ho, wo)) + b[None, :, None, None]
    for i in range(k):
        for j in range(k):
            patch = xp[:, :, i * dil:i * dil + stride * (ho - 1) + 1:stride, j * dil:j * dil + stride * (wo - 1) + 1:stride]
            out += np.einsum("oc,nchw->nohw", w[:, :, i, j], patch)
    return out


def _bilinear(img: np.ndarray, y: float, x: float) -> float:
    """Bilinear sample of a (H, W) image with zeros outside (torchvision's rule)."""
    h, w = img.shape
    y0, x0 = math.floor(y), math.floor(x)
    total = 0.0
    for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
        for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
            if 0 <= yy < h and 0 <= xx < w:
                total += wy * wx * img[yy, xx]
    return total


def _official_formula(m: DeformConvBlock, x: np.ndarray) -> np.ndarray:
    def npy(t: torch.Tensor) -> np.ndarray:
        return t.detach().double().numpy()

    k, s, d, g, og = m.kernel_size, m.stride, m.dilation, m.groups, m.offset_groups
    p = d * (k - 1) // 2 if m.padding is None else m.padding
    offset = _conv(x, npy(m.offset_conv.weight), npy(m.offset_conv.bias), s, p, d)
    if m.modulated:
        mask = 1.0 / (1.0 + np.exp(-_conv(x, npy(m.mask_conv.weight), npy(m.mask_conv.bias), s, p, d)))
    else:
        mask = np.ones((x.shape[0], og * k * k) + offset.shape[2:])
    weight = npy(m.deform_conv.weight)
    bias = npy(m.deform_conv.bias) if m.bias else np.zeros(weight.shape[0])
    n, c = x.shape[:2]
    cout, cin_g = weight.shape[:2]
    ho, wo = offset.shape[2:]
    out = np.zeros((n, cout, ho, wo))
    for b in range(n):
        for oy in range(ho):
            for ox in range(wo):
                for ch in range(c):
                    og_idx = ch // (c // og)
                    taps = np.zeros((k, k))
                    for i in range(k):
                        for j in range(k):
                            dy = offset[b, og_idx * 2 * k * k + 2 * (i * k + j), oy, ox]
                            dx = offset[b, og_idx * 2 * k * k + 2 * (i * k + j) + 1, oy, ox]
                            py, px = oy * s - p + i * d + dy, ox * s - p + j * d + dx
                            taps[i, j] = mask[b, og_idx * k * k + i * k + j, oy, ox] * _bilinear(x[b, ch], py, px)
                    group = ch // cin_g
                    for o in range(group * (cout // g), (group + 1) * (cout // g)):
                        out[b, o, oy, ox] += (weight[o, ch % cin_g] * taps).sum()
        out[b] += bias[:, None, None]
    return out


@pytest.mark.parametrize(
    "kwargs, shape",
    [
        (dict(), (1, 4, 5, 6)),
        (dict(modulated=False), (1, 4, 5, 6)),
        (dict(stride=2), (1, 4, 5, 6)),
        (dict(dilation=2, bias=False), (1, 4, 5, 6)),
        (dict(groups=2, offset_groups=2, padding=0), (2, 4, 5, 6)),
        (dict(kernel_size=1, modulated=False), (1, 4, 3, 5)),
    ],
)
def test_official_formula_float64(kwargs: dict, shape: tuple[int, ...]) -> None:
    m = _randomized(DeformConvBlock(4, 6, **kwargs)).double()
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        y = m(x).numpy()
        offset = m.offset_conv(x)
    assert offset.abs().min() > 0 and offset.abs().max() > 1.0  # fractional, some beyond a pixel
    np.testing.assert_allclose(y, _official_formula(m, x.numpy()), rtol=0, atol=1e-10)


def test_state_dict_keys() -> None:
    sd = DeformConvBlock(64, 64).state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == {
        "offset_conv.weight": (18, 64, 3, 3),
        "offset_conv.bias": (18,),
        "mask_conv.weight": (9, 64, 3, 3),
        "mask_conv.bias": (9,),
        "deform_conv.weight": (64, 64, 3, 3),
        "deform_conv.bias": (64,),
    }
    v1 = DeformConvBlock(8, 16, groups=2, offset_groups=4, modulated=False, bias=False).state_dict()
    assert {k: tuple(v.shape) for k, v in v1.items()} == {
        "offset_conv.weight": (72, 8, 3, 3),
        "offset_conv.bias": (72,),
        "deform_conv.weight": (16, 4, 3, 3),
    }


@pytest.mark.parametrize("modulated, scale", [(False, 1.0), (True, 0.5)])
def test_zero_init_is_a_plain_conv(modulated: bool, scale: float) -> None:
    """Offsets start at 0 and the mask at sigmoid(0) = 0.5, as in DCNv2."""
    m = DeformConvBlock(4, 6, stride=2, dilation=2, modulated=modulated).double().eval()
    x = torch.randn(2, 4, 9, 7, dtype=torch.float64)
    dc = m.deform_conv
    expected = F.conv2d(x, dc.weight, None, dc.stride, dc.padding, dc.dilation) * scale + dc.bias[:, None, None]
    with torch.no_grad():
        torch.testing.assert_close(m(x), expected, rtol=0, atol=1e-12)
    assert dc.padding == (2, 2) and m.offset_conv.padding == (2, 2) and m.offset_conv.stride == (2, 2)


@pytest.mark.parametrize("kwargs, words", [
    (dict(channels=6, out_channels=8, groups=4), ["channels must be divisible by groups=4", "got 6"]),
    (dict(channels=8, out_channels=6, groups=4), ["out_channels must be divisible by groups=4", "got 6"]),
    (dict(channels=6, out_channels=6, offset_groups=4), ["channels must be divisible by offset_groups=4", "got 6"]),
    (dict(channels=4, out_channels=4, kernel_size=0), ["kernel_size", ">= 1", "got 0"]),
    (dict(channels=4, out_channels=4, stride=0), ["stride", ">= 1", "got 0"]),
    (dict(channels=4, out_channels=4, padding=-1), ["padding", "None or >= 0", "got -1"]),
])
def test_validation(kwargs: dict, words: list[str]) -> None:
    with pytest.raises(UsageError) as err:
        DeformConvBlock(**kwargs)
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize("kwargs, shape", [
    (dict(), (1, 64, 56, 56)),
    (dict(), (2, 64, 41, 29)),
    (dict(stride=2, modulated=False, offset_groups=2), (3, 64, 20, 71)),
])
def test_deploy_matches_reference(kwargs: dict, shape: tuple[int, ...]) -> None:
    ref = _randomized(DeformConvBlock(64, 64, **kwargs), offset_scale=0.05)
    assert_twin_equals_reference(ref, DeformConvBlockDeploy(64, 64, **kwargs), [shape], atol=2e-6, rtol=1e-5)

"""Exact adaptive pooling: equal to torch's adaptive pools in both directions, exportable with dynamic H, W."""

from __future__ import annotations

import io
import itertools
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attndeploy.ops.pooling import (
    adaptive_avg_pool2d_exact,
    adaptive_max_pool2d_exact,
    bin_mask,
)

SIZES = [1, 2, 3, 4, 5, 7, 8, 13, 16, 29, 56, 64]
# 144 (in, out) pairs per axis kind: downsampling, upsampling, equal, divisible or not.
PAIRS = list(itertools.product(SIZES, SIZES))


def _pairs_2d() -> list[tuple[int, int, int, int]]:
    """(H, W, oh, ow): every (in, out) pair on H, W paired with a shifted pair, so H != W."""
    n = len(PAIRS)
    return [(h, oh, *PAIRS[(k * 7 + 3) % n]) for k, (h, oh) in enumerate(PAIRS)]


@pytest.mark.parametrize("dtype, atol", [(torch.float64, 1e-13), (torch.float32, 2e-6)])
def test_avg_equals_torch_over_size_pairs(dtype: torch.dtype, atol: float) -> None:
    gen = torch.Generator().manual_seed(0)
    for h, oh, w, ow in _pairs_2d():
        x = torch.randn(2, 3, h, w, generator=gen, dtype=dtype)
        torch.testing.assert_close(adaptive_avg_pool2d_exact(x, (oh, ow)), F.adaptive_avg_pool2d(x, (oh, ow)),
                                   rtol=0, atol=atol, msg=lambda m: f"{(h, w)} -> {(oh, ow)}: {m}")


def test_max_equals_torch_over_size_pairs() -> None:
    gen = torch.Generator().manual_seed(1)
    for h, oh, w, ow in _pairs_2d():
        x = torch.randn(2, 3, h, w, generator=gen)
        assert torch.equal(adaptive_max_pool2d_exact(x, (oh, ow)), F.adaptive_max_pool2d(x, (oh, ow))), \
            f"{(h, w)} -> {(oh, ow)}"


@pytest.mark.parametrize("pool, exact", [(F.adaptive_avg_pool2d, adaptive_avg_pool2d_exact),
                                         (F.adaptive_max_pool2d, adaptive_max_pool2d_exact)])
@pytest.mark.parametrize("size", [7, 1, (1, 3), (5, None), (None, 9), (None, None), (1, 1), [4, 4]])
def test_int_none_and_one_sizes(pool, exact, size) -> None:  # noqa: ANN001
    x = torch.randn(2, 3, 11, 6, dtype=torch.float64)
    torch.testing.assert_close(exact(x, size), pool(x, size), rtol=0, atol=1e-13)


def test_bin_mask_is_the_floor_ceil_rule() -> None:
    for n, o in PAIRS:
        mask = bin_mask(o, n, torch.device("cpu"))
        for i in range(o):
            start, end = (i * n) // o, -(-(i + 1) * n // o)
            expected = [start <= j < end for j in range(n)]
            assert mask[i].tolist() == expected, (n, o, i)


def test_keeps_dtype_and_grad() -> None:
    x = torch.randn(1, 2, 9, 10, requires_grad=True)
    y = adaptive_avg_pool2d_exact(x, (4, 13))
    y.sum().backward()
    ref = x.detach().clone().requires_grad_(True)
    F.adaptive_avg_pool2d(ref, (4, 13)).sum().backward()
    assert y.dtype == torch.float32
    torch.testing.assert_close(x.grad, ref.grad, rtol=0, atol=1e-6)


class _DownUp(nn.Module):
    """Pool to 5×5, then back to the input's (H, W): a static and a dynamic output size."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        avg = adaptive_avg_pool2d_exact(adaptive_avg_pool2d_exact(x, 5), (x.shape[2], x.shape[3]))
        mx = adaptive_max_pool2d_exact(adaptive_max_pool2d_exact(x, (3, 4)), (x.shape[2], None))
        return avg, mx


def _eager(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    avg = F.adaptive_avg_pool2d(F.adaptive_avg_pool2d(x, 5), (x.shape[2], x.shape[3]))
    return avg, F.adaptive_max_pool2d(F.adaptive_max_pool2d(x, (3, 4)), (x.shape[2], None))


@pytest.mark.parametrize("dynamo", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_onnx_export_keeps_h_w_dynamic(dynamo: bool) -> None:
    ort = pytest.importorskip("onnxruntime")
    x = torch.randn(1, 4, 12, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            dim = torch.export.Dim.DYNAMIC
            program = torch.onnx.export(_DownUp(), (x,), dynamo=True, opset_version=18,
                                        dynamic_shapes=({0: dim, 2: dim, 3: dim},), verbose=False)
            model = program.model_proto.SerializeToString()
        else:
            buf = io.BytesIO()
            torch.onnx.export(_DownUp(), (x,), buf, dynamo=False, opset_version=13, input_names=["x"],
                              output_names=["avg", "max"],
                              dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}, "avg": {0: "n", 2: "h", 3: "w"},
                                            "max": {0: "n", 2: "h"}})
            model = buf.getvalue()
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    for shape in [(1, 4, 12, 10), (2, 4, 41, 29), (1, 4, 3, 2), (3, 4, 20, 71)]:
        x = torch.randn(*shape)
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        for g, r in zip(got, _eager(x)):
            np.testing.assert_allclose(g, r.numpy(), rtol=0, atol=1e-6, err_msg=str(shape))

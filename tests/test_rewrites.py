"""Export-time rewrites: each one exact against the function it replaces, over grids of sizes.

Eager grids compare the patched `F.*` / `torch.*` (inside `export_rewrites`) with the
originals; export grids run one exported graph (TorchScript and dynamo) at many input
shapes, so sizes read from ``x.size()`` are checked where they are symbolic.
"""

from __future__ import annotations

import io
import itertools
import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attndeploy.errors import UsageError
from attndeploy.rewrites import (
    PATCHES,
    RewriteLog,
    export_rewrites,
    patch_table,
    unfold_exact,
)

ORIGINAL_AVG, ORIGINAL_MAX = F.adaptive_avg_pool2d, F.adaptive_max_pool2d
ORIGINAL_UNFOLD, ORIGINAL_LINSPACE = F.unfold, torch.linspace
SIZES = [1, 2, 3, 4, 5, 7, 8, 13, 16, 29, 56]
PAIRS = list(itertools.product(SIZES, SIZES))  # 121 (in, out) pairs: down, up, equal, divisible or not


def _pairs_2d() -> list[tuple[int, int, int, int]]:
    """(H, oh, W, ow): every (in, out) pair on H, paired with a shifted pair on W."""
    return [(h, oh, *PAIRS[(k * 7 + 3) % len(PAIRS)]) for k, (h, oh) in enumerate(PAIRS)]


def test_patch_table_lists_every_patch_and_restores() -> None:
    rows = patch_table()
    assert {r["kind"] for r in rows} == {"adaptive_avg_pool2d", "adaptive_max_pool2d", "avg_pool2d", "max_pool2d",
                                         "unfold", "linspace", "arange", "zeros", "ones"}
    before = {(p.owner, p.attr): getattr(__import__(p.owner, fromlist=["_"]), p.attr) for p in PATCHES}
    with export_rewrites(torch.zeros(1)):
        assert F.adaptive_avg_pool2d is not ORIGINAL_AVG and torch.linspace is not ORIGINAL_LINSPACE
    after = {(p.owner, p.attr): getattr(__import__(p.owner, fromlist=["_"]), p.attr) for p in PATCHES}
    assert before == after


def test_restores_on_error_and_nests() -> None:
    with pytest.raises(RuntimeError, match="boom"), export_rewrites(torch.zeros(1)):  # noqa: SIM117  (nested on purpose)
        with export_rewrites(torch.zeros(1, dtype=torch.float16)) as inner:
            torch.zeros(2)
            raise RuntimeError("boom")
    assert inner.counts["zeros"] == 1
    assert F.adaptive_avg_pool2d is ORIGINAL_AVG and F.unfold is ORIGINAL_UNFOLD
    assert torch.linspace is ORIGINAL_LINSPACE and F.adaptive_max_pool2d is ORIGINAL_MAX


def test_bad_arguments_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="deform_conv"), export_rewrites(torch.zeros(1), deform_conv="plugin"):
        pass
    with pytest.raises(UsageError, match="example input tensor"), export_rewrites((1, 3, 8, 8)):  # type: ignore[arg-type]
        pass


@pytest.mark.parametrize("dtype, atol", [(torch.float64, 1e-13), (torch.float32, 2e-6)])
def test_adaptive_avg_equals_torch_over_size_pairs(dtype: torch.dtype, atol: float) -> None:
    gen = torch.Generator().manual_seed(0)
    with export_rewrites(torch.zeros(1, dtype=dtype)) as log:
        for h, oh, w, ow in _pairs_2d():
            x = torch.randn(2, 3, h, w, generator=gen, dtype=dtype)
            torch.testing.assert_close(F.adaptive_avg_pool2d(x, (oh, ow)), ORIGINAL_AVG(x, (oh, ow)), rtol=0,
                                       atol=atol, msg=f"{(h, w)} -> {(oh, ow)}")
    assert log.counts["adaptive_avg_pool2d"] == len(PAIRS) - sum(1 for p in _pairs_2d() if p[1] == p[3] == 1)


def test_adaptive_max_equals_torch_over_size_pairs() -> None:
    gen = torch.Generator().manual_seed(1)
    with export_rewrites(torch.zeros(1)):
        for h, oh, w, ow in _pairs_2d():
            x = torch.randn(2, 3, h, w, generator=gen)
            assert torch.equal(F.adaptive_max_pool2d(x, (oh, ow)), ORIGINAL_MAX(x, (oh, ow))), (h, w, oh, ow)
            assert torch.equal(nn.AdaptiveMaxPool2d((oh, ow))(x), ORIGINAL_MAX(x, (oh, ow))), (h, w, oh, ow)


@pytest.mark.parametrize("size", [7, 1, (1, 3), (5, None), (None, 9), (None, None), (1, 1), [4, 4], (11, 1), (1, 6)])
def test_pool_sizes_int_none_one_and_identity(size: object) -> None:
    x = torch.randn(2, 3, 11, 6, dtype=torch.float64)
    with export_rewrites(x):
        avg, mx = F.adaptive_avg_pool2d(x, size), F.adaptive_max_pool2d(x, size)
        avg3 = F.adaptive_avg_pool2d(x[0], size)  # unbatched (C, H, W)
    torch.testing.assert_close(avg, ORIGINAL_AVG(x, size), rtol=0, atol=1e-13)
    torch.testing.assert_close(avg3, ORIGINAL_AVG(x[0], size), rtol=0, atol=1e-13)
    assert torch.equal(mx, ORIGINAL_MAX(x, size))


def test_return_indices_and_padded_pools_go_to_torch() -> None:
    x = torch.randn(1, 2, 9, 7)
    with export_rewrites(x) as log:
        values, idx = F.adaptive_max_pool2d(x, (4, 3), return_indices=True)
        padded = F.avg_pool2d(x, (9, 7), padding=(1, 1), stride=1)
        local = F.max_pool2d(x, 3, 2)
    assert torch.equal(values, ORIGINAL_MAX(x, (4, 3))) and idx.dtype == torch.int64
    assert padded.shape == (1, 2, 3, 3) and local.shape == (1, 2, 4, 3)
    assert "avg_pool2d" not in log.counts and "max_pool2d" not in log.counts


UNFOLD_GRID = list(itertools.product([1, 2, 3, (2, 3), 7], [1, 2, (1, 3)], [0, 1, (2, 0)], [1, 2, (3, 1)]))


def test_unfold_bit_exact_over_kernel_stride_dilation_padding() -> None:
    gen = torch.Generator().manual_seed(2)
    checked = 0
    with export_rewrites(torch.zeros(1)) as log:
        for (k, d, p, s), (h, w) in itertools.product(UNFOLD_GRID, [(7, 9), (12, 12), (15, 8)]):
            x = torch.randn(2, 3, h, w, generator=gen)
            try:
                ref = ORIGINAL_UNFOLD(x, k, d, p, s)
            except RuntimeError:  # no complete block fits: torch refuses, nothing to compare
                continue
            got = nn.Unfold(k, d, p, s)(x)
            assert got.shape == ref.shape and torch.equal(got, ref), (k, d, p, s, h, w)
            checked += 1
    assert checked >= 300 and log.counts["unfold"] == checked
    x = torch.randn(3, 10, 11)  # unbatched (C, H, W)
    assert torch.equal(unfold_exact(x, 3, 2, 1, 2), ORIGINAL_UNFOLD(x, 3, 2, 1, 2))


def test_linspace_matches_torch() -> None:
    with export_rewrites(torch.zeros(1)) as log:
        ranges = [(-1.0, 1.0), (0.0, 1.0), (-3.5, 10.0), (2.0, -2.0)]
        for steps, (start, end) in itertools.product(range(1, 70), ranges):
            got = torch.linspace(start, end, steps)
            ref = ORIGINAL_LINSPACE(start, end, steps)
            assert got.dtype == ref.dtype == torch.float32 and got.shape == ref.shape
            torch.testing.assert_close(got, ref, rtol=2e-7, atol=2e-7, msg=f"{start}, {end}, {steps}")
            assert got[0] == start and (steps == 1 or got[-1] == end)  # both ends exact, as torch
    assert log.counts["linspace"] == 69 * 4


class _WithBuffer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.ones(2))


def test_factories_follow_the_example_device_and_dtype() -> None:
    x = torch.zeros(2, device="meta", dtype=torch.float16)
    with export_rewrites(x) as log:
        assert torch.zeros(3).device.type == "meta" and torch.zeros(3).dtype == torch.float16
        assert torch.ones([2, 2], device="cpu").device.type == "meta"  # a fixed device is routed too
        assert torch.ones(2, dtype=torch.int32).dtype == torch.int32  # an explicit dtype is kept
        assert torch.arange(5).dtype == torch.int64 and torch.arange(5).device.type == "meta"
        assert torch.arange(0.0, 1.0, 0.25).dtype == torch.float16
        assert torch.linspace(-1, 1, 5).dtype == torch.float16
        internal = {"__name__": "torch._attndeploy_test_internal", "torch": torch}
        exec("made = torch.zeros(2)", internal)  # noqa: S102  (torch's own calls are left alone)
        built = _WithBuffer()  # and so are constructors: parameters keep their dtype and device
    assert internal["made"].device.type == "cpu" and internal["made"].dtype == torch.float32
    assert built.scale.device.type == "cpu" and built.scale.dtype == torch.float32
    assert log.counts["zeros"] == 2 and log.counts["ones"] == 2 and log.counts["arange"] == 3
    assert "zeros x2" in log.summary() and "test_rewrites.py:" in log.sites["zeros"][0]


class _Pools(nn.Module):
    """Every pool kind with literal sizes, sizes from x.size(), identity, up and down."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        _n, _c, h, w = x.size()
        a = F.adaptive_avg_pool2d(x, (5, 7))  # literal sizes: down or up
        b = F.adaptive_avg_pool2d(a, (h, w))  # back to (H, W): sizes from x.size() on another tensor
        i = nn.AdaptiveAvgPool2d((h, 1))(x)  # identity on H (x.size() of x itself), reduction on W
        m = F.adaptive_max_pool2d(x, (3, w))  # max: literal + identity
        u = F.adaptive_max_pool2d(m, (h, 4))  # max: up to x's H, W -> 4
        g = F.avg_pool2d(x, (h, w)) + F.max_pool2d(x, x.size()[2:])  # whole-input kernels
        return a, b, i, m, u, g


def _eager_pools(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    h, w = x.shape[2:]
    a = ORIGINAL_AVG(x, (5, 7))
    m = ORIGINAL_MAX(x, (3, w))
    return (a, ORIGINAL_AVG(a, (h, w)), ORIGINAL_AVG(x, (h, 1)), m, ORIGINAL_MAX(m, (h, 4)),
            x.mean((2, 3), keepdim=True) + x.amax((2, 3), keepdim=True))


def _export(model: nn.Module, x: torch.Tensor, dynamo: bool) -> tuple[ort.InferenceSession, RewriteLog]:
    with warnings.catch_warnings(), export_rewrites(x) as log:
        warnings.simplefilter("ignore")
        if dynamo:
            dim = torch.export.Dim.DYNAMIC
            program = torch.onnx.export(model, (x,), dynamo=True, opset_version=18, verbose=False,
                                        dynamic_shapes=({0: dim, 2: dim, 3: dim},))
            data = program.model_proto.SerializeToString()
        else:
            buf = io.BytesIO()
            torch.onnx.export(model, (x,), buf, dynamo=False, opset_version=17, input_names=["x"],
                              dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}})
            data = buf.getvalue()
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"]), log


SHAPES = [(1, 2, 12, 10), (2, 2, 1, 1), (1, 2, 3, 2), (3, 2, 5, 7), (1, 2, 41, 29), (2, 2, 8, 56), (1, 2, 13, 4),
          (1, 2, 29, 16), (2, 2, 2, 3), (1, 2, 7, 5), (1, 2, 56, 13), (2, 2, 16, 8)]


@pytest.mark.parametrize("dynamo", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_exported_pools_stay_dynamic_over_size_pairs(dynamo: bool) -> None:
    session, log = _export(_Pools(), torch.randn(1, 2, 12, 10), dynamo)
    # sizes read from x.size() are recognised as x's own dims (identity), not baked into matrices
    assert log.modes["adaptive_avg_pool2d:identity+reduction"] >= 1 and log.modes["adaptive_max_pool2d:matrix"] >= 1
    assert log.modes["adaptive_max_pool2d:matrix+identity"] >= 1
    assert log.counts["avg_pool2d"] >= 1 and log.counts["max_pool2d"] >= 1
    pairs = set()
    for shape in SHAPES:
        x = torch.randn(*shape)
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        for k, (g, r) in enumerate(zip(got, _eager_pools(x))):
            np.testing.assert_allclose(g, r.numpy(), rtol=0, atol=2e-6, err_msg=f"output {k} at {shape}")
        h, w = shape[2:]
        pairs |= {(h, 5), (w, 7), (5, h), (7, w), (h, 3), (3, h), (w, 4)}  # (in, out) per pooled axis
    assert len(pairs) >= 60 and any(i < o for i, o in pairs) and any(i > o for i, o in pairs)


class _Coords(nn.Module):
    """nn.Unfold (k=3, dilation 2, padding 1, stride 2) and a linspace grid sized from x.size()."""

    def __init__(self) -> None:
        super().__init__()
        self.unfold = nn.Unfold(3, dilation=2, padding=1, stride=2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = x.shape[2:]
        grid = torch.linspace(-1.0, 1.0, w).unsqueeze(0) + torch.linspace(-1.0, 1.0, h).unsqueeze(1)
        return self.unfold(x), x + grid


@pytest.mark.parametrize("dynamo", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_exported_unfold_and_linspace_stay_dynamic(dynamo: bool) -> None:
    session, log = _export(_Coords(), torch.randn(1, 2, 12, 10), dynamo)
    assert log.counts["unfold"] >= 1 and log.counts["linspace"] >= 2
    for shape in [(1, 2, 12, 10), (2, 2, 5, 5), (1, 2, 31, 8), (3, 2, 3, 9), (1, 2, 9, 4), (1, 2, 4, 3)]:
        x = torch.randn(*shape)  # H, W >= 3: at least one block for k=3, dilation 2, padding 1
        h, w = shape[2:]
        ref_grid = ORIGINAL_LINSPACE(-1.0, 1.0, w).unsqueeze(0) + ORIGINAL_LINSPACE(-1.0, 1.0, h).unsqueeze(1)
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        np.testing.assert_array_equal(got[0], ORIGINAL_UNFOLD(x, 3, 2, 1, 2).numpy(), err_msg=str(shape))
        np.testing.assert_allclose(got[1], (x + ref_grid).numpy(), rtol=0, atol=5e-7, err_msg=str(shape))

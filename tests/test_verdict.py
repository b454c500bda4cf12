"""The judge (`attndeploy.verdict`): every budget, with the negative controls that show each one failing."""

import math

import numpy as np
import pytest

from attndeploy.verdict import Budget, TruthData, TruthProbe, judge
from attndeploy.verdict.rule import EPS32, FACTOR, distances


def probe(eager, reference=None, shape=(1, 2)):
    eager = np.asarray(eager, np.float32)
    reference = eager.astype(np.float64) if reference is None else np.asarray(reference, np.float64)
    return TruthProbe(shape, np.zeros(shape, np.float32), {"y": eager}, {"y": reference})


def verdict(p, got, budget=None):
    return judge([p], lambda x: [np.asarray(got)], ["y"], budget or Budget.float64(), ("fp32", "test"))


def test_given_tolerance_fails_an_element_only_past_both_atol_and_rtol():
    budget = Budget.given(1e-4, 1e-3)
    assert verdict(probe([[1000.0]]), np.float32([[1000.5]]), budget).passed          # 5e-4 relative: inside rtol
    assert not verdict(probe([[1000.0]]), np.float32([[1002.0]]), budget).passed      # past both
    assert verdict(probe([[0.0]]), np.float32([[5e-5]]), budget).passed               # inside atol
    assert not verdict(probe([[0.01]]), np.float32([[0.0105]]), budget).passed


def test_nan_inf_and_shape_mismatch_always_fail():
    p = probe([[1.0, 2.0]])
    for budget in (Budget.float64(), Budget.given(1.0, 1.0), Budget.cosine(0.0, "fp16")):
        assert not verdict(p, np.float32([[1.0, np.nan]]), budget).passed
        assert not verdict(p, np.float32([[1.0, np.inf]]), budget).passed
        assert not verdict(p, np.float32([[1.0]]), budget).passed


def noisy(seed=0, channels=16, n=400):
    """A float64 truth, an fp32 'eager' a few ulps off it, and a second fp32 implementation as far off."""
    rng = np.random.default_rng(seed)
    ref = rng.standard_normal((1, channels, n)) * 3
    eager = (ref * (1 + rng.standard_normal(ref.shape) * 4 * EPS32)).astype(np.float32)
    other = (ref * (1 + rng.standard_normal(ref.shape) * 4 * EPS32)).astype(np.float32)
    return probe(eager, ref, ref.shape), other


def test_a_second_fp32_implementation_as_far_from_float64_passes():
    p, other = noisy()
    v = verdict(p, other)
    assert v.passed and 0 < v.outputs[0].ratio < FACTOR, v.outputs[0].ratio


@pytest.mark.parametrize("d", [1e-3, 1e-4])
def test_one_channel_scaled_by_1_plus_d_fails_and_is_reported(d):
    p, other = noisy()
    other[:, 5] *= 1 + d
    v = verdict(p, other)
    out = v.outputs[0]
    assert not v.passed and out.worst_index[1] == 5 and out.ratio > FACTOR
    assert "eager fp32's distance to float64" in v.failure_message()


def test_a_channel_eager_computes_exactly_uses_the_pooled_noise_and_the_floors():
    """Channel 0 is exact in eager (distance 0): the other channels' typical noise and the ulp floor stand in."""
    p, other = noisy()
    p.eager["y"][:, 0] = p.reference["y"][:, 0].astype(np.float32)
    p.reference["y"][:, 0] = p.eager["y"][:, 0].astype(np.float64)
    assert verdict(p, other).passed
    other[:, 0] *= 1 + 1e-4
    assert not verdict(p, other).passed


def test_exact_zero_outputs_pass_a_few_ulps_and_fail_more():
    ref = np.zeros((1, 2, 8))
    ref[:, 1] = 1.0
    p = probe(ref.astype(np.float32), ref, ref.shape)
    assert verdict(p, (ref + 2 * EPS32).astype(np.float32)).passed
    assert not verdict(p, (ref + 1e-4).astype(np.float32)).passed


def test_an_ill_conditioned_input_is_named_and_judged_against_float64():
    ref = np.linspace(1, 2, 32).reshape(1, 2, 16)
    eager = (ref * (1 + 2e-3)).astype(np.float32)          # eager fp32 itself 2e-3 off float64
    p = probe(eager, ref, ref.shape)
    v = verdict(p, (ref * (1 - 2e-3)).astype(np.float32))   # as far, on the other side: a correct graph
    assert v.passed and v.outputs[0].ill_conditioned_shapes == ["1x2x16"]
    assert not verdict(p, (ref * 1.1).astype(np.float32)).passed


def test_a_second_eager_sample_widens_the_basis_of_an_ill_conditioned_channel_only_and_travels_in_the_file(tmp_path):
    """Eager at another thread count landed 100x farther from float64 (`spread`): a graph as far as that passes,
    one past FACTOR x that still fails, and a channel without a spread keeps its own basis."""
    ref = np.linspace(1, 2, 32).reshape(1, 2, 16)
    eager = (ref * (1 + 1e-5)).astype(np.float32)
    p = probe(eager, ref, ref.shape)
    got = (ref * np.array([1 + 1e-3, 1.0]).reshape(1, 2, 1)).astype(np.float32)   # channel 0: 1e-3 off
    assert not verdict(p, got).passed
    p.spread["y"] = np.array([1e-3 * 2, 0.0])      # the other sample: channel 0 was 1e-3 * |ref| <= 2e-3 off
    assert verdict(p, got).passed
    assert not verdict(p, (ref * np.array([1.1, 1.0]).reshape(1, 2, 1)).astype(np.float32)).passed  # 0.1 > 32 x 2e-3
    assert not verdict(p, (ref * np.array([1.0, 1 + 1e-3]).reshape(1, 2, 1)).astype(np.float32)).passed
    TruthData("float64", "", "x", ["y"], [p]).save(tmp_path / "t.npz")
    loaded = TruthData.load(tmp_path / "t.npz").probes[0]
    np.testing.assert_array_equal(loaded.spread["y"], p.spread["y"])
    assert judge([loaded], lambda x: [got], ["y"], Budget.float64(), ("fp32", "t")).passed


def test_the_worst_element_is_located():
    p = probe(np.zeros((2, 3)), shape=(2, 3))
    v = verdict(p, np.float32([[0, 0, 0], [0, 0.5, 0]]), Budget.given(1e-4, 1e-3))
    acc = v.outputs[0]
    assert acc.worst_index == [1, 1] and acc.max_abs_err == pytest.approx(0.5) and acc.worst_shape == "2x3"


def test_integer_outputs_must_be_equal():
    p = TruthProbe((1, 3), np.zeros((1, 3), np.float32), {"y": np.int64([[1, 2, 3]])}, {"y": np.float64([[1, 2, 3]])})
    assert judge([p], lambda x: [np.int64([[1, 2, 3]])], ["y"], Budget.float64(), ("fp32", "t")).passed
    assert not judge([p], lambda x: [np.int64([[1, 2, 4]])], ["y"], Budget.float64(), ("fp32", "t")).passed


def test_a_cosine_budget_and_a_graph_with_nothing_at_the_precision():
    p, other = noisy()
    budget = Budget.cosine(0.9999, "int8")
    ok = verdict(p, other, budget)
    ok.reduced_fraction = 0.5
    assert ok.passed
    ok.reduced_fraction = 0.0
    assert not ok.passed and "not the precision asked for" in ok.failure_message()
    rough = verdict(p, other * np.float32(1.5) - 1, budget)
    assert not rough.passed and rough.outputs[0].below_budget


def test_a_backend_that_raises_fails_that_probe_with_its_error():
    p = probe([[1.0, 2.0]])

    def broken(x):
        raise RuntimeError("Reshape: cannot reshape 6 into (1, 4)")

    v = judge([p], broken, ["y"], Budget.float64(), ("fp32", "t"))
    assert not v.passed and "cannot reshape" in v.failure_message()
    assert math.isinf(v.outputs[0].max_abs_err)


def test_distances_per_channel():
    ref = np.float64([[[1.0, -2.0], [0.5, 0.25]]])
    eager = np.float32([[[1.0, -2.0], [0.5, 0.25]]])
    d = distances(ref, eager, eager + np.float32(1e-3))
    assert d.scale.tolist() == [2.0, 0.5] and d.graph == pytest.approx([1e-3, 1e-3], rel=1e-3)


def test_truth_round_trips_through_its_file_without_pickle(tmp_path):
    p, _ = noisy()
    data = TruthData("float64", "", "input", ["y"], [p], {"rule": "any H, W"})
    data.save(tmp_path / "truth.npz")
    back = TruthData.load(tmp_path / "truth.npz")
    assert back.output_names == ["y"] and back.probes[0].shape == p.shape and back.meta == {"rule": "any H, W"}
    np.testing.assert_array_equal(back.probes[0].reference["y"], p.reference["y"])
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="truth file must be readable"):
        TruthData.load(tmp_path / "bad.npz")

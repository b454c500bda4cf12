"""The parity rule and what it reports, including the negative controls that show it can fail."""

import numpy as np
import pytest
import torch

import attndeploy
from attndeploy.parity import OutputParity, Probe, compare, compare_probes
from attndeploy.registry import Tolerance

TOL = Tolerance(1e-4, 1e-3)


def fold(ref, got):
    acc = OutputParity("y")
    compare(np.asarray(ref, np.float32), np.asarray(got, np.float32), TOL, (1, 2), acc)
    return acc


def test_element_fails_only_past_both_atol_and_rtol():
    assert fold([1000.0], [1000.5]).passed          # 5e-4 relative: inside rtol
    assert not fold([1000.0], [1002.0]).passed      # past both
    assert fold([0.0], [5e-5]).passed               # inside atol
    assert not fold([0.01], [0.0105]).passed        # 5e-4 abs > atol, 5e-2 rel > rtol


def test_nan_and_shape_mismatch_fail():
    assert not fold([1.0, 2.0], [1.0, np.nan]).passed
    assert not fold([1.0, 2.0], [1.0]).passed


def test_an_output_without_a_measured_noise_still_has_a_rule():
    """Values of 0.01: ONNX_TOL (atol 1e-4, rtol 1e-3) allows 1e-4 where no noise was measured; a measured per-channel
    atol of 1e-2 allows more where it was."""
    ref = np.full((1, 2, 3), 0.01, np.float32)
    probes = [Probe((1, 2, 3), ref.copy(), {"output": ref})]
    per_channel = {"output": np.full(2, 1e-2)}
    expected = {("none", 5e-5): True, ("none", 5e-4): False, ("none", 2e-2): False,
                ("channel", 5e-5): True, ("channel", 5e-4): True, ("channel", 2e-2): False}
    for (kind, off), passes in expected.items():
        atols = per_channel if kind == "channel" else {}
        report = compare_probes(probes, lambda x, off=off: [ref + off], ["output"], None, "b", lambda p, a=atols: a)
        assert report.passed == passes, (kind, off)
    assert report.outputs[0].rule() == "atol 0.01..0.01 per channel"


def test_the_per_channel_atol_range_spans_every_shape():
    acc = OutputParity("y")
    for shape, atol in (((1, 2), [1e-5, 2e-5]), ((2, 2), [3e-5, 4e-5])):
        compare(np.zeros(shape, np.float32), np.zeros(shape, np.float32), None, shape, acc, np.array(atol))
    assert acc.channel_atol == [1e-5, 4e-5] and acc.rule() == "atol 1e-05..4e-05 per channel"


def test_worst_element_is_located():
    acc = fold(np.zeros((2, 3)), [[0, 0, 0], [0, 0.5, 0]])
    assert acc.worst_index == [1, 1] and acc.max_abs_err == pytest.approx(0.5) and acc.worst_shape == "1x2"


class UserCoordAtt(attndeploy.get_spec("coordatt").reference):
    """A user's copy (not our class, so no twin is swapped in): pools from the official AdaptiveAvgPool2d."""


def test_dynamo_export_that_bakes_sizes_is_caught_at_other_shapes(tmp_path):
    model = attndeploy.randomize_(UserCoordAtt(64))
    res = attndeploy.export(model, (1, 64, 56, 56), tmp_path / "user.onnx", opset=18, rewrites=False)
    assert res.exporter == "dynamo" and not res.passed
    message = res.parity.failure_message()
    assert "2x64x43x29" in message and "1x64x56x56" not in message.split(":")[0] and "max abs" in message
    assert res.onnx_path.name == "user.rejected.onnx" and not (tmp_path / "user.onnx").exists()


def test_torchscript_refusal_is_reported_per_exporter(tmp_path):
    with pytest.raises(attndeploy.CheckFailed, match="torchscript: .*adaptive pooling"):
        attndeploy.export(attndeploy.randomize_(UserCoordAtt(64)), (1, 64, 56, 56), tmp_path / "u.onnx", opset=17,
                          rewrites=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("opset", [17, 18])
def test_the_same_user_module_exports_with_the_rewrites(opset, tmp_path):
    res = attndeploy.export(attndeploy.randomize_(UserCoordAtt(64)), (1, 64, 56, 56), tmp_path / "u.onnx", opset=opset)
    assert res.passed and res.rewrites["counts"].get("adaptive_avg_pool2d", 0) >= 2, res.rewrites


def test_report_names_output_shape_and_magnitude(tmp_path):
    class Drifts(torch.nn.Module):
        def forward(self, x):
            return x * 1.01 if torch.onnx.is_in_onnx_export() else x

    res = attndeploy.export(Drifts(), (1, 3, 8, 8), tmp_path / "d.onnx", opset=17)
    assert not res.passed
    assert res.parity.failure_message().startswith("output 'output' differs at 1x3x8x8, 2x3x7x5")


def test_an_output_that_is_not_a_tensor_is_dropped_with_a_note(tmp_path):
    class WithAux(torch.nn.Module):
        def forward(self, x):
            return {"logits": x.mean((2, 3)), "aux": None}

    lines: list[str] = []
    res = attndeploy.export(WithAux(), (1, 3, 8, 8), tmp_path / "a.onnx", opset=17, log=lines.append)
    assert res.passed and [o.name for o in res.parity.outputs] == ["logits"]
    assert "aux: NoneType dropped (not a tensor, so not a graph output)" in res.notes
    assert any(line.endswith("aux: NoneType dropped (not a tensor, so not a graph output)") for line in lines)

"""Evidence that holds on real models (issue 11): shape rules, realistic inputs, noise-scaled tolerances, any
output structure, the determinism gate, models we cannot deep-copy, and the second export route.

Each pattern is one of our own models in `evidence_models.py`; every check is also shown failing on a real bug.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

import attndeploy
from attndeploy.errors import CheckFailed, UsageError
from tests.evidence_models import (
    DriftsOneChannel,
    DropoutInEval,
    EvenOnly,
    FixedSize,
    LargeOutputs,
    NestedOutputs,
    NonLeafGamma,
    SingleImageShortcut,
    SquareMultipleOf16,
    TinyDetector,
    WritesIntoInput,
)


def fresh(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    return attndeploy.randomize_(model, seed).eval()


@pytest.fixture(scope="module")
def detector_result(tmp_path_factory):
    out = tmp_path_factory.mktemp("det") / "det.onnx"
    return attndeploy.export(fresh(TinyDetector()), (1, 3, 128, 128), out, opset=17)


def test_stride_32_detector_passes_inside_its_rule(detector_result):
    res = detector_result
    rule = res.evidence["shape_rule"]
    assert rule.startswith("H, W multiples of 32") and "97x65 fails in eager at `" in rule, rule
    assert res.passed, res.parity.failure_message()
    assert all(int(h) % 32 == 0 and int(w) % 32 == 0 for h, w in (s.split("x")[2:] for s in res.parity.shapes))
    assert any(s.startswith(("2x", "3x")) for s in res.parity.shapes)  # batch > 1 kept


def test_detector_uses_image_like_inputs_and_scaled_tolerance(detector_result):
    res = detector_result
    assert res.evidence["inputs"]["kind"] == "image"
    assert res.evidence["noise"]["method"] == "float64"
    (out,) = res.parity.outputs
    assert out.limit is not None and out.limit[1] > 100 * out.limit[0]  # box channels get more room than scores
    assert res.parity.budget.kind == "float64" and 0 < out.ratio <= res.parity.budget.factor
    assert 0 < out.eager_distance and out.graph_distance <= res.parity.budget.factor * out.limit[1]


@pytest.mark.parametrize("model,shape,words,square", [
    (EvenOnly(), (1, 4, 16, 16), "H, W multiples of 2", False),
    (SquareMultipleOf16(), (1, 4, 32, 32), "square H = W, multiples of 16", True),
])
def test_shape_rules_are_discovered_and_the_sweep_follows_them(model, shape, words, square, tmp_path):
    res = attndeploy.export(fresh(model), shape, tmp_path / "m.onnx", opset=17)
    assert res.evidence["shape_rule"].startswith(words), res.evidence["shape_rule"]
    assert res.passed, res.parity.failure_message()
    assert len(res.parity.shapes) >= 3
    for s in res.parity.shapes:
        n, c, h, w = map(int, s.split("x"))
        assert h % int(words.split()[-1]) == 0 and w % int(words.split()[-1]) == 0 and (h == w or not square)


def test_a_fixed_size_model_keeps_only_batch_dynamic(tmp_path):
    res = attndeploy.export(fresh(FixedSize()), (1, 4, 12, 20), tmp_path / "f.onnx", opset=17)
    assert res.evidence["shape_rule"].startswith("fixed H, W = 12x20")
    assert res.evidence["dynamic_axes"] == [0] and any("only 0 axes dynamic" in n for n in res.notes)
    assert res.passed and all(s.endswith("x12x20") for s in res.parity.shapes) and len(res.parity.shapes) >= 2


def test_parity_shapes_outside_the_rule_are_bad_input(tmp_path):
    with pytest.raises(UsageError, match=r"outside what the model accepts \(H, W multiples of 32"):
        attndeploy.export(fresh(TinyDetector()), (1, 3, 128, 128), tmp_path / "d.onnx",
                          parity_shapes=[(1, 3, 128, 128), (1, 3, 100, 128)])
    assert not (tmp_path / "d.onnx").exists()


def test_large_outputs_pass_with_noise_scaled_tolerance_and_fail_a_fixed_one(tmp_path):
    model = fresh(LargeOutputs())
    res = attndeploy.export(model, (1, 8, 24, 24), tmp_path / "big.onnx", opset=17)
    assert res.passed, res.parity.failure_message()
    assert res.parity.max_abs_err > 1e-4  # a fixed atol of 1e-4 with no rtol would have rejected it
    fixed = attndeploy.export(model, (1, 8, 24, 24), tmp_path / "big2.onnx", opset=17, atol=1e-5, rtol=0.0)
    assert not fixed.passed and fixed.onnx_path.name == "big2.rejected.onnx"


def test_an_injected_conv_bug_fails_in_a_detector(tmp_path):
    model = fresh(TinyDetector())
    model.head = DriftsOneChannel(model.head, channel=4, relative=1e-3)  # a class-score channel
    res = attndeploy.export(model, (1, 3, 128, 128), tmp_path / "bug.onnx", opset=17)
    assert not res.passed and "differs at" in res.parity.failure_message()


class SCSEWithDrift(attndeploy.get_spec("scse").reference):
    """The registry's scSE whose cSE output conv drifts by 1e-2 in one channel in the exported graph only (its gate's
    logit: the output channel moves by ~1e-4 of its scale, what the verdict is measured to catch)."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels)
        self.cSE[3] = DriftsOneChannel(self.cSE[3], channel=5, relative=1e-2)


def test_an_injected_conv_bug_fails_in_a_zoo_module(tmp_path):
    model = attndeploy.randomize_(SCSEWithDrift(64)).eval()
    res = attndeploy.export(model, (1, 64, 32, 32), tmp_path / "zoo.onnx", opset=17, name="scse")
    assert not res.passed and "differs at" in res.parity.failure_message()
    assert res.localisation is not None and res.localisation.path.startswith("cSE")


def test_outputs_of_any_structure_are_flattened_with_stable_names(tmp_path):
    res = attndeploy.export(fresh(NestedOutputs()), (1, 4, 16, 16), tmp_path / "n.onnx", opset=17)
    assert res.passed and [o.name for o in res.parity.outputs] == ["output0", "output1_mean", "output1_peak"]
    import onnx

    assert [o.name for o in onnx.load(str(res.onnx_path)).graph.output] == ["output0", "output1_mean", "output1_peak"]


def test_a_model_that_moves_between_runs_gets_no_verdict(tmp_path):
    with pytest.raises(CheckFailed, match=r"changes between two runs by .* at `gate` \(Sequential\)|changes between "
                                          r"two runs by .* at `<root>`"):
        attndeploy.export(fresh(DropoutInEval()), (1, 8, 16, 16), tmp_path / "d.onnx", opset=17)
    assert not (tmp_path / "d.onnx").exists() and not (tmp_path / "d.rejected.onnx").exists()


def test_a_model_that_writes_into_its_input_is_compared_on_copies(tmp_path):
    res = attndeploy.export(fresh(WritesIntoInput()), (1, 4, 16, 16), tmp_path / "w.onnx", opset=17)
    assert res.passed, res.parity.failure_message()


def test_non_leaf_tensor_attributes_do_not_stop_the_export_and_the_model_is_unchanged(tmp_path):
    model = fresh(NonLeafGamma()).train()
    before = copy.deepcopy(model.state_dict())
    res = attndeploy.export(model, (1, 8, 16, 16), tmp_path / "g.onnx", opset=17)
    assert res.passed, res.parity.failure_message()
    assert model.training and model.gamma.grad_fn is not None
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_user_data_as_parity_inputs(tmp_path):
    data = np.random.default_rng(0).random((3, 3, 128, 128), dtype=np.float32)
    np.save(tmp_path / "x.npy", data)
    res = attndeploy.export(fresh(TinyDetector()), (1, 3, 128, 128), tmp_path / "u.onnx", opset=17,
                            inputs=tmp_path / "x.npy")
    assert res.passed and res.evidence["inputs"]["kind"] == "data" and res.evidence["inputs"]["samples"] == 3


def test_an_image_folder_as_parity_inputs(tmp_path):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    res = attndeploy.export(fresh(TinyDetector()), (1, 3, 64, 96), tmp_path / "i.onnx", opset=17, inputs=folder)
    assert res.passed and res.evidence["inputs"]["samples"] == 2


def test_user_data_with_other_channels_is_bad_input(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 4, 8, 8), np.float32))
    with pytest.raises(UsageError, match="channels"):
        attndeploy.export(fresh(TinyDetector()), (1, 3, 64, 64), tmp_path / "u.onnx", inputs=tmp_path / "x.npy")


def test_report_json_holds_the_evidence(tmp_path):
    res = attndeploy.export(fresh(EvenOnly()), (1, 4, 16, 16), tmp_path / "e.onnx", opset=17,
                            report=True)
    report = json.loads((tmp_path / "report.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert report["evidence"]["shape_rule"] == res.evidence["shape_rule"]
    assert report["parity"]["noise"]["method"] == "float64"


def test_when_dynamo_bakes_the_batch_a_second_route_gives_a_correct_graph(tmp_path):
    model = fresh(SingleImageShortcut())
    wrong = attndeploy.export(model, (1, 8, 16, 16), tmp_path / "d.onnx", opset=18, exporter="dynamo")
    assert not wrong.passed and "2x8x" in wrong.parity.failure_message()
    assert wrong.localisation is not None and wrong.parity.blame  # the module and the baked node are named
    res = attndeploy.export(model, (1, 8, 16, 16), tmp_path / "b.onnx", opset=18)
    assert res.passed and res.route == "torchscript-18", (res.parity.failure_message(), res.notes)
    assert any(n.startswith("route dynamo-18: fails") for n in res.notes) and res.exporter == "torchscript"
    assert "route torchscript-18: passed; the graph comes from this route" in res.notes


def _area_attention(shape: tuple[int, ...]) -> None:
    """An eager run of a stride-32 backbone with area attention over 4 areas after it: H/32 * W/32 must divide by 4."""
    n, _, h, w = shape
    if h % 32 or w % 32 or (h // 32) * (w // 32) % 4:
        raise RuntimeError(f"shape '[{4 * n}, 8, 384]' is invalid for input of size {n * (h // 32) * (w // 32) * 384}")


def test_a_declared_rule_the_model_does_not_keep_is_said_and_the_batch_not_blamed():
    from attndeploy.parity.shape_rules import ShapeRule, discover_rule

    declared = ShapeRule(32, evidence=("the model's stride is 32",))
    rule = discover_rule(_area_attention, (1, 3, 320, 320), declared)
    assert rule.batch is None and rule.multiple == 64 and rule.fixed is None, rule.describe()
    assert rule.describe().startswith("H, W multiples of 64 (224x160 (inside the declared rule: H, W multiples of 32) "
                                      "fails in eager: shape '[4, 8, 384]' is invalid"), rule.describe()

    def one_batch(shape: tuple[int, ...]) -> None:  # the control: a batch that is fixed is still said to be
        if shape[0] != 1:
            raise RuntimeError("expected batch 1")

    rule = discover_rule(one_batch, (1, 3, 320, 320), declared)
    assert rule.batch == 1 and rule.multiple == 32 and "batch 2 (2x3x224x160) fails in eager" in rule.describe()

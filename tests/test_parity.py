"""Parity end to end: what the pipeline catches and reports (the judge's own rules: tests/test_verdict.py)."""

import pytest
import torch

import attndeploy

class UserCoordAtt(attndeploy.get_spec("coordatt").reference):
    """A user's copy (not our class, so no twin is swapped in): pools from the official AdaptiveAvgPool2d."""


def test_dynamo_export_that_bakes_sizes_is_caught_at_other_shapes(tmp_path):
    model = attndeploy.randomize_(UserCoordAtt(64))
    res = attndeploy.export(model, (1, 64, 56, 56), tmp_path / "user.onnx", opset=18, rewrites=False,
                            exporter="dynamo")
    assert res.exporter == "dynamo"
    dynamic = next(n for n in res.notes if n.startswith("route dynamo-18: fails"))
    assert "2x64x43x29" in dynamic and "max abs" in dynamic
    # right at 56x56 and wrong elsewhere: H, W fixed (batch dynamic), and said so
    assert res.passed and res.route == "dynamo-18, H, W fixed" and res.evidence["dynamic_axes"] == [0]
    assert any(n.startswith("H, W fixed at 56x56 with the batch dynamic") for n in res.notes)
    assert res.parity.shapes == ["1x64x56x56", "2x64x56x56"]
    import onnx

    dims = onnx.load(str(res.onnx_path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[1:]] == [64, 56, 56] and not dims[0].dim_value


def test_torchscript_refusal_is_reported_per_exporter(tmp_path):
    with pytest.raises(attndeploy.CheckFailed, match="torchscript-17: .*adaptive pooling"):
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

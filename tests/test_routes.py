"""The route driver: every exporter's route, then H, W fixed where only the example's size is right."""

import onnx
import pytest
import torch

import attndeploy
from tests.evidence_models import DCTAttention


def fresh(model):
    return attndeploy.randomize_(model).eval()


def test_a_branch_on_the_input_size_gets_h_w_fixed_with_the_batch_dynamic(tmp_path):
    res = attndeploy.export(fresh(DCTAttention()), (1, 16, 7, 7), tmp_path / "dct.onnx", opset=17)
    assert res.passed and res.route == "torchscript-17, H, W fixed", res.notes
    assert res.evidence["dynamic_axes"] == [0] and res.parity.shapes == ["1x16x7x7", "2x16x7x7"]
    failed = next(n for n in res.notes if n.startswith("route torchscript-17: fails"))
    assert "backend raised" in failed  # the dynamic graph cannot run at another size
    note = next(n for n in res.notes if n.startswith("H, W fixed at 7x7 with the batch dynamic"))
    assert "if h != self.dct_h or w != self.dct_w" in note and "evidence_models.py:" in note, note
    dims = onnx.load(str(res.onnx_path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[1:]] == [16, 7, 7] and not dims[0].dim_value


class WrongEverywhere(torch.nn.Module):
    """Right in eager, scaled by 1.01 in the graph at every size: no route makes it right."""

    def forward(self, x):
        return x * 1.01 if torch.onnx.is_in_onnx_export() else x


def test_a_graph_wrong_at_the_example_too_is_not_rescued_by_fixing_h_w(tmp_path):
    res = attndeploy.export(WrongEverywhere(), (1, 3, 8, 8), tmp_path / "w.onnx", opset=17)
    assert not res.passed and res.route == "torchscript-17"
    assert not any(n.startswith("H, W fixed") for n in res.notes)


@pytest.mark.parametrize("exporter", ["dynamo"])
def test_an_explicit_exporter_keeps_its_own_routes(exporter, tmp_path):
    res = attndeploy.export(fresh(DCTAttention()), (1, 16, 7, 7), tmp_path / "d.onnx", opset=18, exporter=exporter)
    assert res.exporter == exporter and res.route.startswith(f"{exporter}-18")

"""Every registry name exports and the written ONNX matches eager PyTorch, checked here independently.

Each graph is checked at the module's measured `onnx_tol` (at or below 1e-4 + 1e-3·|ref|).
The CLI's report and files at opset 17, dynamic, for a deploy twin, a lowering and an H, W
multiple (every module at that setting: the README grid below, and the zoo recipe in
`tests/test_recipes.py`). The dynamic graphs at every other opset
and exporter are the README support table's: each cell runs once per suite (`readme_cell`),
keeps its passing graph, and each is checked here at the module's parity shapes, with no
hazard op left in the modules whose deploy twins remove them. The static graphs are
checked at opsets 13 and 17 through the Python API. DeformConv at opset 13 goes through
TensorRT's plugin node, whose numbers are checked with the node swapped for ONNX DeformConv.
"""

import json

import pytest

import attndeploy
from attndeploy.cli.main import main
from attndeploy.weights import randomize_
from attndeploy.defaults import DYNAMO_MIN_OPSET
from attndeploy.matrix import kept_graph, parse_grid
from tests.conftest import readme_grid_args
from tests.helpers import assert_onnx_matches_eager, op_types

NAMES = attndeploy.list_modules()
CLI_NAMES = ("acmix", "deformconv", "spd")


@pytest.mark.parametrize("name", NAMES)
def test_sweep_holds_odd_non_square_sizes_or_the_modules_multiple(name):
    spec = attndeploy.get_spec(name)
    sweep = spec.sweep_shapes()
    assert any(h % 2 and w % 2 and h != w for _, _, h, w in sweep) or \
        spec.hw_multiple > 1 and all(h % spec.hw_multiple == w % spec.hw_multiple == 0 and h != w for _, _, h, w in sweep)


@pytest.mark.parametrize("name", CLI_NAMES)
def test_cli_export_opset17_dynamic(name, tmp_path, capsys):
    assert main(["export", name, "--opset", "17", "--dynamic", "--out", str(tmp_path), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    report = json.loads((tmp_path / "report.json").read_text())
    assert printed == report
    assert report["opset"] == 17 and report["parity"]["passed"] is True
    assert len(report["parity"]["shapes"]) == 3  # the example, batch > 1 at odd non-square H, W, a wide H, W
    onnx_path = tmp_path / f"{name}.onnx"
    assert report["onnx"] == str(onnx_path) and onnx_path.exists()
    bundle = {f["path"].split("/")[0] for f in report["bundle"]["files"]}  # the device bundle: listed in the report
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({f"{name}.onnx", "report.json", *bundle})

    spec = attndeploy.get_spec(name)
    model = randomize_(attndeploy.create(name), seed=report["seed"])
    assert_onnx_matches_eager(onnx_path, model, [spec.example_shape, *spec.sweep_shapes()], spec.onnx_tol.atol,
                              spec.onnx_tol.rtol)
    assert report["simplify"]["nodes_after"] <= report["simplify"]["nodes_before"]


def _export(name, opset, dynamic, tmp_path):
    """Below opset 16 a deformable conv exists only as TensorRT's plugin (a no-op for other modules)."""
    model = randomize_(attndeploy.create(name), seed=11)
    res = attndeploy.export(model, attndeploy.get_spec(name).example_shape, tmp_path / f"{name}.onnx",
                            opset=opset, dynamic=dynamic, name=name,
                            deform_conv="plugin" if opset < 16 else "auto")
    return model, res


STATIC = [(n, o) for n in NAMES for o in (13, 17)]


@pytest.mark.slow
@pytest.mark.parametrize("name,opset", STATIC)
def test_static_export(name, opset, tmp_path):
    spec = attndeploy.get_spec(name)
    model, res = _export(name, opset, False, tmp_path)
    assert res.parity.passed, res.parity.failure_message()
    assert res.opset == opset and res.onnx_path.exists()
    assert_onnx_matches_eager(res.onnx_path, model, [spec.example_shape], spec.onnx_tol.atol, spec.onnx_tol.rtol)
    assert res.simplify.nodes_after <= res.simplify.nodes_before


BANNED = {"acmix": {"Gather", "Col2Im", "Im2Col"}, "coordatt": {"AveragePool"}, "mlca": {"AveragePool"},
          "cbam": {"AveragePool", "MaxPool"}}   # what the deploy twins and rewrites remove


def _applicable(cell) -> bool:
    return not (cell.exporter == "dynamo" and cell.opset < DYNAMO_MIN_OPSET) and \
        cell.opset >= attndeploy.get_spec(cell.module).min_opset


README_CELLS = [c for c in parse_grid(readme_grid_args()).cells() if _applicable(c)]


@pytest.mark.slow
@pytest.mark.parametrize("cell", README_CELLS, ids=lambda c: f"{c.module}-{c.exporter}-{c.opset}-{c.axes}")
def test_readme_grid_graph_matches_eager(cell, readme_cell):
    result, keep = readme_cell(cell)
    assert result.status == "pass", result.detail
    spec = attndeploy.get_spec(cell.module)
    model = randomize_(attndeploy.create(cell.module), seed=0)  # the matrix's seed
    path = kept_graph(keep, cell)
    assert_onnx_matches_eager(path, model, spec.parity_shapes() if cell.dynamic else [spec.example_shape],
                              spec.onnx_tol.atol, spec.onnx_tol.rtol)
    banned = BANNED.get(cell.module, set()) & set(op_types(path))
    assert not banned, sorted(banned)


@pytest.mark.parametrize("opset,lowering,op", [(17, "decompose", "GridSample"), (19, "onnx", "DeformConv")])
def test_cli_export_deformconv_lowerings(opset, lowering, op, tmp_path, capsys):
    assert main(["export", "deformconv", "--opset", str(opset), "--out", str(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["parity"]["passed"] and report["opset"] == opset
    assert op in report["node_counts"]
    model = randomize_(attndeploy.create("deformconv"), seed=report["seed"])
    assert_onnx_matches_eager(tmp_path / "deformconv.onnx", model, attndeploy.get_spec("deformconv").parity_shapes())


def test_cli_export_deformconv_plugin_keeps_the_plugin_node(tmp_path, capsys):
    args = ["export", "deformconv", "--opset", "13", "--deform-conv", "plugin", "--out", str(tmp_path), "--json"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["node_counts"].get("trt.plugins::ModulatedDeformConv2d") == 1
    assert report["parity"]["passed"]  # the simplified plugin graph is checked by parity, on DeformConv

"""`attndeploy matrix`: the grid's arguments, cells, the compact Markdown, the README block.

The README's support table must be what the command produces now for the grid its start
marker records (slow: the grid takes minutes on one core; `readme_cell` runs each cell once
per suite run, and `test_export_registry` checks the graphs it kept against eager).
"""

import json
from pathlib import Path

import pytest

from attndeploy.errors import UsageError
from attndeploy.matrix import (
    Cell,
    CellResult,
    Grid,
    parse_grid,
    run_cell,
    run_matrix,
    to_markdown,
    to_text,
)
from attndeploy.matrix.cells import classify_export_error
from attndeploy.matrix.readme import read_block, replace_block
from attndeploy.matrix.render import lint_text
from attndeploy.registry import list_modules

README = Path(__file__).resolve().parents[1] / "README.md"
SMALL = ["se", "--opsets", "17,18", "--axes", "dynamic", "--trt", "8.6,10"]


# -- the grid ---------------------------------------------------------------------------------------------------

def test_default_grid_is_the_full_registry():
    grid = parse_grid([])
    assert grid.modules() == list_modules() and grid.opsets == (13, 16, 17, 18, 19, 20)
    assert len(grid.cells()) == len(list_modules()) * 6 * 2 * 2
    assert grid.argv() == []


def test_grid_round_trips_through_its_argv():
    grid = parse_grid(["cbam", "se", "--opsets", "20,13,17", "--exporters", "torchscript", "--trt", "10"])
    assert grid.opsets == (13, 17, 20) and grid.names == ("cbam", "se")
    assert parse_grid(grid.argv()) == grid
    assert grid.argv() == ["cbam", "se", "--opsets", "13,17,20", "--exporters", "torchscript", "--trt", "10"]


@pytest.mark.parametrize("argv,words", [
    (["--opsets", "12,17"], ["--opsets must lie in the range", "13..20", "[12]"]),
    (["--opsets", "17,x"], ["integers joined by ','"]),
    (["--exporters", "dynamoo"], ["unknown exporter 'dynamoo'", "did you mean 'dynamo'"]),
    (["--axes", "dynamc"], ["unknown axes 'dynamc'", "did you mean 'dynamic'"]),
    (["cbma"], ["unknown module 'cbma'", "did you mean 'cbam'"]),
    (["--trt", "9"], ["unknown TensorRT version"]),
    (["--bogus"], ["unrecognized arguments"]),
])
def test_bad_grid_arguments(argv, words):
    with pytest.raises(UsageError) as info:
        parse_grid(argv)
    assert all(w in str(info.value) for w in words), str(info.value)


@pytest.mark.parametrize("args", [["matrix", "cbma"], ["matrix", "--opsets", "99"], ["matrix", "--jobs", "0"],
                                  ["matrix", "--check"], ["matrix", "se", "--readme", "README.md"]])
def test_cli_bad_usage_exits_2(cli, capsys, args):
    assert cli(args) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: ")


# -- cells --------------------------------------------------------------------------------------------------------

def test_passing_cell_is_linted_for_each_version():
    r = run_cell(Cell("se", 17, "torchscript", True), ("8.6", "10"))
    assert r.status == "pass", r.detail
    assert set(r.lint) == {"8.6", "10"} and r.lint["10"] == [] and r.nodes > 0


def test_dynamo_below_18_is_not_applicable():
    r = run_cell(Cell("se", 17, "dynamo", True))
    assert r.status == "n/a" and "opset >= 18" in r.detail


def test_deformconv_below_16_goes_through_the_plugin():
    r = run_cell(Cell("deformconv", 13, "torchscript", True), ("8.6",))
    assert r.status == "pass" and r.lowering == "plugin", r.detail


@pytest.mark.parametrize("message,short", [
    (("export failed with every exporter that can write opset 17: torchscript: minus_one_pos != -1 INTERNAL ASSERT "
      "FAILED at shape_type_inference.cpp"), "exporter internal assert"),
    (("export failed with every exporter that can write opset 13: torchscript: Exporting the operator "
      "'aten::col2im' to ONNX opset version 13 is not supported"), "unsupported aten::col2im"),
    ("onnxsim's numeric check failed: the simplified graph differs", "onnxsim numeric check"),
    ("the graph holds float64 tensors (TensorRT has none)", "float64 tensors"),
    (("export failed with every exporter that can write opset 18: dynamo: the dynamo exporter baked dynamic input "
      "axes of 'input': dim 2 = 56"), "baked dynamic axes"),
    ("something odd", "export error"),
])
def test_short_reasons(message, short):
    assert classify_export_error(message) == short


# -- rendering ----------------------------------------------------------------------------------------------------

def _fake(module, exporter, dynamic, opset, status, short="", lint=None, lowering=""):
    return CellResult(Cell(module, opset, exporter, dynamic), status, short, short, lowering,
                      lint if lint is not None else ({"8.6": [], "10": []} if status == "pass" else {}))


def test_markdown_is_one_row_per_module_exporter_axes():
    grid = Grid(("se",), (13, 18), ("torchscript", "dynamo"), ("static", "dynamic"), ("8.6", "10"))
    results = [
        _fake("se", "torchscript", False, 13, "pass"), _fake("se", "torchscript", False, 18, "pass",
                                                            lint={"8.6": ["opset"], "10": []}),
        _fake("se", "torchscript", True, 13, "pass"), _fake("se", "torchscript", True, 18, "fail", "parity 1x64x43x29"),
        _fake("se", "dynamo", False, 13, "n/a"), _fake("se", "dynamo", False, 18, "fail", "export error"),
        _fake("se", "dynamo", True, 13, "n/a"), _fake("se", "dynamo", True, 18, "pass",
                                                     lint={"8.6": ["opset", "unsupported-op Foo"], "10": []}),
    ]
    md = to_markdown(grid, results)
    lines = md.splitlines()
    assert "`attndeploy matrix se --opsets 13,18 --trt 8.6,10 --md`" in lines[0]
    assert lines[3] == "| module | exporter | axes | opset 13 | opset 18 | TRT 8.6 | TRT 10 |"
    assert lines[5:] == [
        "| se | torchscript | static | ✓ | ✓ | ✗ opset (18) | ✓ |",
        "| se | torchscript | dynamic | ✓ | ✗ parity 1x64x43x29 | ✓ | ✓ |",
        "| se | dynamo | static | — | ✗ export error | — | — |",
        "| se | dynamo | dynamic | — | ✓ | ✗ opset; unsupported-op Foo | ✓ |",
    ]
    assert "8 cells: 4 passed, 2 failed, 2 n/a" in to_text(grid, results)


def test_lint_column_degrades_when_the_lint_is_unavailable():
    r = _fake("se", "torchscript", True, 17, "pass", lint={})
    r.lint_error = "lint unavailable (No module named 'attndeploy.lint.trt_lint')"
    assert lint_text([r], "10") == "n/a (lint unavailable)"


def test_matrix_runs_a_small_grid_and_prints_markdown(cli, capsys):
    assert cli(["matrix", *SMALL, "--md", "--no-progress"]) == 0
    md = capsys.readouterr().out
    assert "| se | torchscript | dynamic | ✓ | ✓ |" in md and "| se | dynamo | dynamic | — | ✓ |" in md
    assert cli(["matrix", *SMALL, "--json", "--no-progress"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["counts"] == {"pass": 3, "fail": 0, "n/a": 1} and data["grid"]["argv"] == SMALL


# -- the README block -----------------------------------------------------------------------------------------------

def test_block_markers_and_arguments():
    text = "intro\n<!-- matrix:start se --opsets 13,17 -->\nold table\n<!-- matrix:end -->\noutro\n"
    block = read_block(text)
    assert block.args == ["se", "--opsets", "13,17"] and block.body == "old table\n"
    assert replace_block(text, "new\n") == "intro\n<!-- matrix:start se --opsets 13,17 -->\nnew\n<!-- matrix:end -->\noutro\n"
    with pytest.raises(UsageError, match="exactly one"):
        read_block("no markers")
    with pytest.raises(UsageError, match="end marker"):
        read_block("<!-- matrix:start -->\n")


def test_readme_option_rewrites_then_checks(cli, capsys, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n<!-- matrix:start {' '.join(SMALL)} -->\nstale\n<!-- matrix:end -->\n")
    assert cli(["matrix", "--readme", str(readme), "--check", "--no-progress"]) == 1
    assert "differs" in capsys.readouterr().err
    assert cli(["matrix", "--readme", str(readme), "--no-progress"]) == 0
    text = readme.read_text()
    assert text.startswith("# x\n<!-- matrix:start se --opsets") and text.endswith("|\n<!-- matrix:end -->\n")
    assert cli(["matrix", "--readme", str(readme), "--check", "--no-progress"]) == 0


def test_jobs_give_the_same_results_as_one_process():
    grid = parse_grid(["eca", "--opsets", "17", "--exporters", "torchscript", "--trt", "10"])
    assert [r.status for r in run_matrix(grid, jobs=2)] == [r.status for r in run_matrix(grid, jobs=1)]


@pytest.mark.slow
def test_readme_support_table_is_current(readme_cell):
    """The README's table equals `attndeploy matrix --md` for the grid recorded in its start marker."""
    block = read_block(README.read_text(encoding="utf-8"), "README.md")  # fails until the README holds the markers
    grid = parse_grid(block.args)
    # from the last cell back (the grid tests of test_export_registry go forward, on the other worker perhaps);
    # a cell another worker is running now is taken later, not waited for in its turn
    results, pending = {}, list(reversed(grid.cells()))
    while pending:
        taken = {cell: readme_cell(cell, wait=False) for cell in pending}
        results.update({cell: got[0] for cell, got in taken.items() if got is not None})
        left = [cell for cell in pending if taken[cell] is None]
        if left == pending:  # every one left is running elsewhere: wait for the first
            results[left[0]] = readme_cell(left[0])[0]
            left = left[1:]
        pending = left
    fresh = to_markdown(grid, [results[cell] for cell in grid.cells()])
    assert block.body == fresh, ("README.md's support table is stale: regenerate it with "
                                 "`attndeploy matrix --readme README.md`")

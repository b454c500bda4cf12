"""The export table as a person reads it (issue 21): one block per graph (precision x backend), its column header
directly above its rows, the task check in one line, no stdout line past 100 columns, `--verbose` for the rest.

Layout over every registry module is checked on results built from real verdicts (`judge` on the module's example
and sweep shapes, with planted failures), a real `attndeploy export cbam` through the CLI, and a YOLOv8n exported
at fp16 and at INT8 (each also judged at fp32) at a small imgsz.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import attndeploy
from attndeploy.adapters.base import TaskCheck
from attndeploy.cli.export_cmd import result_lines
from attndeploy.cli.table import MORE, WIDTH, fit, fit_lines
from attndeploy.parity.shape_rules import discover_rule
from attndeploy.pipeline.result import ExportResult
from attndeploy.verdict import Budget, TruthProbe, Verdict, judge
from attndeploy.verdict.budget import reduced_budget
from tests.detector_models import yolo_env  # noqa: F401  (fixture)

TITLE = re.compile(r"^(engine )?\w+/[\w-]+: (PASSED|FAILED)  rule: ")
HEADER = re.compile(r"^  output +max abs .*result$")
ROW = re.compile(r"^  \S+ +\S+ +\S+ +\S+ +(\S+ +)?\S+ +(pass|FAIL)$")
# what `attndeploy export cbam --opset 17` printed before issue 21: the header above a summary line, not a row
OLD_LAYOUT = """cbam: models/cbam/cbam.onnx  (opset 17, torchscript, dynamic, 28 nodes)
  shape rule: any H, W
  output          max abs    max rel     cosine  worst shape    result
  fp32/onnxruntime-cpu vs eager (distance to float64 <= 32 x eager fp32's, per channel) at 1x64x56x56, 2x64x43x29: PASSED
  output         4.77e-07   3.66e-06  1.0000000  1x64x56x56     pass""".splitlines()


def layout_problems(lines: list[str], outputs: list[int]) -> list[str]:
    """What breaks the layout of graphs with `outputs[i]` outputs each: a line past WIDTH; a header not directly
    above its graph's rows (one per output) or not under its block's title; a row that is not under a header."""
    problems = [f"line {i} has {len(line)} columns: {line!r}" for i, line in enumerate(lines) if len(line) > WIDTH]
    headers = [i for i, line in enumerate(lines) if HEADER.match(line)]
    if len(headers) != len(outputs):
        problems.append(f"{len(headers)} column headers for {len(outputs)} graphs")
    for i, count in zip(headers, outputs):
        rows = lines[i + 1:i + 1 + count]
        if len(rows) != count or not all(ROW.match(r) for r in rows):
            problems.append(f"header at line {i} is not directly above its {count} row(s): {rows}")
        above = lines[max(i - 3, 0):i]
        if not any(TITLE.match(t) for t in above) or not (TITLE.match(lines[i - 1])
                                                          or lines[i - 1].startswith(("  at ", "    "))):
            problems.append(f"header at line {i} is not under its block's title: {above}")
    for i, line in enumerate(lines):
        if ROW.match(line) and not (HEADER.match(lines[i - 1]) or ROW.match(lines[i - 1])):
            problems.append(f"row at line {i} is not under a column header: {line!r}")
    return problems


def outputs_of(res: ExportResult) -> list[int]:
    """Outputs per graph, in print order: every (precision, backend), then the engine."""
    return [len(v.outputs) for v in res.parities.values()] + ([len(res.engine.parity.outputs)] if res.engine else [])


def test_the_layout_check_finds_the_old_layout():
    problems = layout_problems(OLD_LAYOUT, [1])
    assert any("has 121 columns" in p for p in problems), problems
    assert any("not directly above" in p for p in problems), problems
    assert any("not under its block's title" in p for p in problems), problems


# fit: cut at a clause boundary, never inside a word or a number ----------------------------------------------------

DETECTIONS = ("same detections on bus.jpg and zidane.jpg letterboxed to 640x640: 2+4 boxes, same classes, min IoU "
              "1.00000 (conf 0.0006831: random weights put 0 box(es) above ultralytics' 0.25, so the threshold sits "
              "in a 0.04 relative gap between eager scores (top 13); NMS IoU 0.7)")


@pytest.mark.parametrize("width", range(12, 200, 7))
def test_fit_keeps_words_and_numbers_whole(width):
    shown = fit(DETECTIONS, width)
    assert len(shown) <= width
    if shown != DETECTIONS:
        kept = shown.rstrip(")").removesuffix(MORE)
        assert DETECTIONS.startswith(kept) and DETECTIONS[len(kept)] in " ,;:.", (width, shown)
        assert shown.count("(") == shown.count(")")


@pytest.mark.parametrize("width", range(30, 100, 3))
def test_fit_keeps_an_index_whole(width):
    blame = "diverges first at `m.0` (Flatten, cbam.py:48): max abs 1.02e-07 at [0, 9] of its output [1, 64]"
    shown = fit(blame, width)
    assert len(shown) <= width and shown.count("[") == shown.count("]") and blame.startswith(shown.split(MORE)[0])


def test_fit_prefers_a_clause_boundary():
    assert fit(DETECTIONS, 80) == "same detections on bus.jpg and zidane.jpg letterboxed to 640x640: 2+4 boxes ..."
    lines = fit_lines("shape rule: H, W multiples of 32 (the model's stride is 32; 481x321 fails in eager at "
                      "`model.11` (Concat): Sizes of tensors must match except in dimension 1. Expected size 32 but got "
                      "size 31 for tensor number 1 in the list.)", 100, 2)
    assert lines[-1] == "    (Concat): Sizes of tensors must match except in dimension 1 ...)" and len(lines) == 2


@pytest.mark.parametrize("error,said", [
    ("1x3x49x33 fails in eager at `m.1` (Conv): odd", "49x33 fails in eager at `m.1` (Conv): odd"),   # EagerFailed
    ("odd", "49x33 fails in eager: odd"),                                                             # a raw error
])
def test_the_shape_rule_says_its_evidence_once(error, said):
    def run(shape):
        if shape[2] % 2:
            raise RuntimeError(error)

    assert discover_rule(run, (1, 3, 64, 64)).describe() == f"H, W multiples of 2 ({said})"


# every registry module, from real verdicts ---------------------------------------------------------------------------

def _probe(shape: tuple[int, ...], seed: int = 0) -> TruthProbe:
    rng = np.random.default_rng(seed)
    reference = rng.standard_normal(shape)
    return TruthProbe(shape, rng.random(shape, dtype=np.float32), {"output": reference.astype(np.float32)},
                      {"output": reference})


def _planted(scale: float, nan: bool = False):
    """A graph whose channel 1 is off by a factor `scale` (and a NaN at element 0 when `nan`)."""
    def run(x: np.ndarray, probes: dict) -> list[np.ndarray]:
        got = probes[x.shape].eager["output"].copy()
        got[:, 1] *= scale
        if nan:
            got.reshape(-1)[0] = np.nan
        return [got]
    return run


def registry_result(name: str, folder: Path) -> ExportResult:
    """`name`'s layout inputs (example, sweep, shape rule) with verdicts `judge` gave: fp32 passing, fp16 (and its
    strict copy) passing, int8 failing (a channel scaled by 1.5, a NaN), an int8 engine at two of the three shapes."""
    spec = attndeploy.get_spec(name)
    probes = [_probe(s, i) for i, s in enumerate([spec.example_shape, *spec.sweep_shapes()])]
    by_shape = {p.x.shape: p for p in probes}

    def verdict(key: tuple[str, str], budget: Budget, scale: float, nan: bool = False) -> Verdict:
        return judge(probes, lambda x: _planted(scale, nan)(x, by_shape), ["output"], budget, key)

    fp16 = verdict(("fp16", "onnxruntime-cpu"), reduced_budget("fp16"), 1.001)
    fp16.strict = verdict(("fp16", "onnxruntime-cpu"), reduced_budget("fp16"), 1.01)
    fp16.reduced_fraction = 1.0
    parities = {("fp32", "onnxruntime-cpu"): verdict(("fp32", "onnxruntime-cpu"), Budget.float64(), 1.0),
                ("fp16", "onnxruntime-cpu"): fp16,
                ("int8", "onnxruntime-cpu"): verdict(("int8", "onnxruntime-cpu"), reduced_budget("int8"), 1.5, True)}
    notes = ["route dynamo-18: fails (output 'output' differs at 2x64x43x29: max abs 0.5 at shape 2x64x43x29 "
             "index [1, 2, 3, 4], 50x eager fp32's distance to float64)",
             f"batch fixed at {'x'.join(map(str, spec.example_shape))} by the model ({spec.rule.describe()}): only no "
             "axes dynamic; a note long enough to need cutting at a clause boundary, which it gets, here"]
    inside = probes[:2]   # the engine's profile holds two of the three probes
    engine = judge(inside, lambda x: _planted(1.0)(x, by_shape), ["output"], reduced_budget("int8"), ("int8", "tensorrt"))
    report = SimpleNamespace(parity=engine, passed=engine.passed, build=SimpleNamespace(
        engine_path=folder / name / f"{name}.int8.engine"), skipped_shapes=[p.label for p in probes[2:]])
    tasks = {"fp32": TaskCheck("detections", "passed", DETECTIONS),
             "fp16": TaskCheck("detections", "undecidable", "eager's scores are tied: no threshold decides"),
             "int8": TaskCheck("detections", "failed", "detections differ on bus.jpg: eager has 3 boxes of class 0, the "
                                                    "graph 2 (bus.jpg and zidane.jpg letterboxed to 640x640; conf 0.25)")}
    return ExportResult(name, folder / name / f"{name}.int8.onnx", 17, "torchscript", True, spec.example_shape,
                        parities[("int8", "onnxruntime-cpu")], node_counts={"Conv": 12}, parities=parities,
                        notes=notes, engine=report, tasks=tasks, evidence={"shape_rule": spec.rule.describe(),
                                                              "inputs": {"description": "feature-map inputs: N(0, 1)"}})


@pytest.mark.parametrize("name", attndeploy.list_modules())
def test_every_registry_module_fits_the_layout(name, tmp_path):
    res = registry_result(name, tmp_path)
    lines = result_lines(res, tmp_path / name / "report.json")
    assert layout_problems(lines, outputs_of(res)) == []
    text = "\n".join(lines)
    assert "int8/onnxruntime-cpu: FAILED" in text and "fp32/onnxruntime-cpu: PASSED" in text
    assert "\nengine int8/tensorrt: PASSED" in text and "\n  not run (outside the engine's profile): " in text
    assert re.search(r"^  output +\S+ +\S+ +nan +nan +\S+ +FAIL$", text, re.M), text   # the NaN: never a pass
    assert "\n  why: output 'output'" in text
    assert "\n  detections: UNDECIDABLE  eager's scores are tied: no threshold decides\n" in text
    assert "\n  detections: FAILED  detections differ on bus.jpg: eager has 3 boxes of class 0, the graph 2 ...\n" in text
    assert "route dynamo-18" not in text                                      # the route not taken: report only
    flat = " ".join(line.strip() for line in lines)   # a long path wraps
    assert f"full details: {tmp_path / name / 'report.json'} (\"parities\", \"tasks\", \"engine\", \"notes\")" in flat
    verbose = "\n".join(result_lines(res, tmp_path / name / "report.json", verbose=True))
    assert "route dynamo-18: fails (output 'output' differs" in verbose and "at its worst channel" in verbose


def test_of_limit_is_the_rules_share():
    """fp32: the graph's distance to float64 over FACTOR x eager's (a 1% error in one channel is far past it)."""
    probes = [_probe((1, 8, 4, 4))]
    by_shape = {p.x.shape: p for p in probes}
    fp32 = judge(probes, lambda x: _planted(1.01)(x, by_shape), ["output"], Budget.float64(), ("fp32", "onnxruntime-cpu"))
    fp16 = judge(probes, lambda x: _planted(1.02)(x, by_shape), ["output"], reduced_budget("fp16"), ("fp16", "x"))
    res = ExportResult("m", Path("m.onnx"), 17, "torchscript", True, (1, 8, 4, 4), fp32,
                       parities={("fp32", "onnxruntime-cpu"): fp32, ("fp16", "x"): fp16})
    rows = [line.split() for line in result_lines(res) if ROW.match(line)]
    assert rows[0][4] == f"{fp32.outputs[0].ratio / 32:.3g}x" and rows[0][-1] == "FAIL"
    used = (1 - fp16.outputs[0].min_cosine) / 1e-4
    assert rows[1][4] == f"{100 * used:.0f}%" and rows[1][-1] == "pass"


# the CLI and a YOLO ------------------------------------------------------------------------------------------------

def test_cli_export_prints_the_table(cli, tmp_path, capsys):
    assert cli(["export", "cbam", "--opset", "17", "--out", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    report = json.loads((tmp_path / "report.json").read_text())
    assert layout_problems(lines, [len(v["outputs"]) for v in report["parities"].values()]) == []
    flat = " ".join(line.strip() for line in lines)   # a long path wraps
    assert flat.endswith(f"full details: {tmp_path / 'report.json'} (\"parities\"), or run with --verbose")
    assert "shape rule: any H, W" in lines
    assert cli(["export", "cbam", "--opset", "17", "--out", str(tmp_path), "--verbose"]) == 0
    verbose = capsys.readouterr().out
    assert "at its worst channel" in verbose and "--verbose" not in verbose


def test_verbose_and_json_are_one_or_the_other(cli, capsys):
    assert cli(["export", "cbam", "--json", "--verbose"]) == 2
    printed = json.loads(capsys.readouterr().out)   # exactly one JSON object, even for this error
    assert printed["rule"].endswith("cannot be given together") and {"--json", "--verbose"} <= set(printed["rule"].split())


@pytest.fixture(scope="module")
def yolo_export(yolo_env, tmp_path_factory):  # noqa: F811
    """A YOLOv8n (random weights, imgsz 128: at 64 its random boxes make the fp32 detection check fail) exported at a
    precision, each once: its fp32 graph is judged too."""
    from tests.detector_models import build

    folder = tmp_path_factory.mktemp("yolo-table")
    model = build("yolov8n", folder)
    images = np.random.default_rng(3).random((4, 3, 128, 128), dtype=np.float32)  # int8: 4, not the 2 it ships
    cache: dict[str, ExportResult] = {}

    def get(precision: str) -> ExportResult:
        if precision not in cache:
            cache[precision] = attndeploy.export(model, None, folder / precision / "y.onnx", imgsz=128,
                                                 precision=precision,
                                                 **({"calibration": images} if precision == "int8" else {}))
        return cache[precision]

    return get


def assert_yolo_layout(res: ExportResult) -> None:
    lines = result_lines(res, res.onnx_path.parent / "report.json")
    assert layout_problems(lines, outputs_of(res)) == [], "\n".join(lines)
    assert [line.split(":")[0] for line in lines if TITLE.match(line)] == [f"fp32/onnxruntime-cpu",
                                                                           f"{res.precision}/onnxruntime-cpu"]
    tasks = [i for i, line in enumerate(lines) if line.startswith("  detections: ")]
    assert len(tasks) == 2 and all(ROW.match(lines[i - 1]) or lines[i - 1].startswith("  strict") for i in tasks)
    assert any(line.startswith("shape rule: H, W multiples of 32 (") for line in lines), lines
    assert "\n".join(lines).count("fails in eager") == 1                 # the shape rule's evidence, said once


@pytest.mark.detector
def test_a_yolo_at_fp32_and_fp16_fits_the_layout(yolo_export):
    assert_yolo_layout(yolo_export("fp16"))


@pytest.mark.slow
@pytest.mark.detector
def test_a_yolo_at_fp32_and_int8_fits_the_layout(yolo_export):
    assert_yolo_layout(yolo_export("int8"))

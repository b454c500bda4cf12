"""`bench --precisions`, `bench --export` and `python -m attndeploy.selftest` on bad input (issue 18), in-process:
one line and exit 2 before ultralytics (or any export) runs, a failed fp32 export as a one-line finding (exit 1),
`--json` as one JSON object, nothing left in the working folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.bad_input_helpers import TINY, refused, run_main, tree
from tests.detector_models import yolo_env  # noqa: F401  (fixture)

BAKED = '''
import torch
from torch import nn


class Baked(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return y - float(y.mean())  # a Python float: the trace bakes the example's mean into the graph


def build():
    torch.manual_seed(0)
    return Baked()
'''


@pytest.fixture
def scratch(tmp_path, monkeypatch, capsys, yolo_env):  # noqa: F811
    """An empty working folder, ultralytics offline and imported (its first import ever writes its settings file
    and says so, once per machine: not a line of ours)."""
    import ultralytics  # noqa: F401

    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    return tmp_path


def test_bench_precisions_on_a_model_whose_fp32_graph_fails_is_one_line(scratch, capsys):
    (scratch / "baked.py").write_text(BAKED)
    run = run_main(capsys, "bench", "--precisions", "baked.py:build", "--input", "1x3x16x16", "--iters", "2",
                   "--json")
    assert run.code == 1, run.err
    assert run.lines[-1].startswith("check failed: build: no fp16 graph: the fp32 graph failed its checks (output")
    assert sum(line.startswith("check failed") for line in run.lines) == 1
    assert run.json() == {"error": run.lines[-1].removeprefix("check failed: "), "rule": "check failed",
                          "passed": False}
    assert tree(scratch) == ["baked.py"]  # models/bench-precision, made by the bench, is gone


def test_bench_precisions_json_is_one_object(scratch, capsys):
    run = run_main(capsys, "bench", "--precisions", TINY, "--input", "1x3x16x16", "--iters", "2", "--json")
    assert run.code == 0, run.err
    result = run.json()
    assert result["passed"] is True and result["input"] == [1, 3, 16, 16]
    assert [g["graph"] for g in result["graphs"]] == ["fp32", "fp16", "int8", "int8-ort-cpu"]
    assert all(g["median_ms"] > 0 and g["passed"] for g in result["graphs"])


def _yaml(folder: Path, name: str, text: str) -> str:
    (folder / name).write_text(text)
    return name


@pytest.mark.parametrize("command", ["bench", "export"])
@pytest.mark.parametrize("text,words", [
    ("foo: bar\n", ["a model YAML needs its layer lists", "'backbone' and 'head'", "no 'backbone' or 'head'",
                    "keys: foo"]),
    ("backbone: [\n", ["must be valid YAML", "line 2, column 1"]),
    ("- 1\n- 2\n", ["a model YAML is a mapping", "got list"]),
    ("backbone:\n  - [-1, 1, Conv]\nhead:\n  - [-1, 1, Detect, [80]]\n", ["every layer of a model YAML",
                                                                       "backbone[0] = [-1, 1, 'Conv']"]),
    ("backbone:\n  - [-1, 1, NotAModule, [16]]\nhead:\n  - [-1, 1, Detect, [80]]\n",
     ["names a module ultralytics' YAML parser does not know", "'NotAModule'"]),
], ids=["foo-bar", "broken", "a-list", "short-layer", "unknown-module"])
def test_a_yaml_that_is_no_model_is_one_line(command, text, words, scratch, capsys):
    yaml_file = _yaml(scratch, "m.yaml", text)
    args = ["bench", "--export", yaml_file] if command == "bench" else ["export", yaml_file]
    run_args = [*args, "--json"]
    line = refused(capsys, run_args, *words)
    assert "WARNING" not in capsys.readouterr().err and "WARNING" not in line
    assert tree(scratch) == ["m.yaml"]


@pytest.mark.parametrize("args,words", [
    (["--export-imgsz", "0"], ["--export-imgsz is out of range", "1..32768", "got 0"]),
    (["--export-rounds", "0"], ["--export-rounds is out of range", "got 0"]),
    (["--export-out", "blocker"], ["output directory must be writable", "not a directory"]),
], ids=["imgsz-0", "rounds-0", "out-under-a-file"])
def test_bench_export_options_are_checked_before_ultralytics_runs(args, words, scratch, capsys, monkeypatch):
    import ultralytics

    monkeypatch.setattr(ultralytics, "YOLO", lambda *a, **k: pytest.fail("ultralytics ran"))
    (scratch / "blocker").write_text("a file")
    refused(capsys, ["bench", "--export", "yolov8n.yaml", *args, "--json"], *words)
    assert tree(scratch) == ["blocker"]


def test_bench_export_takes_a_yaml_only(scratch, capsys):
    refused(capsys, ["bench", "--export", "yolov8n.pt"], "bench --export takes a model YAML", "yolov8n.pt")


def test_bench_export_json_is_one_object(scratch, capsys, monkeypatch):
    """The command's JSON and exit code from the comparison's report (the comparison itself is the speed test's)."""
    from attndeploy.bench import export_speed
    from attndeploy.cli import bench_cmd

    def fake_run(source, args, log):
        export_speed.check_export_arguments(source, args)
        return export_speed.ExportSpeed("yolov8n", (64, 64), 17, [1.0, 1.2], [2.0, 2.2], {"export": 0.5}, False)

    monkeypatch.setattr(bench_cmd, "run_export_bench", fake_run)
    run = run_main(capsys, "bench", "--export", "yolov8n.yaml", "--export-imgsz", "64", "--json")
    assert run.code == 1 and run.json()["ratio"] == 2.0 and run.json()["passed"] is False


@pytest.mark.parametrize("existed", [False, True], ids=["made-by-the-bench", "there-before"])
def test_an_interrupted_bench_export_leaves_nothing_it_made(existed, scratch, capsys, monkeypatch):
    """SIGINT while both exporters write: exit 130, one line; the folders the bench made are gone with their files,
    a folder that was there before stays."""
    import signal

    from attndeploy.bench import export_speed
    from attndeploy.usercode import Interrupted

    if existed:
        (scratch / "models").mkdir()

    def interrupted(source, folder, **kwargs):
        for which in ("ultralytics", "attndeploy"):
            (Path(folder) / which).mkdir(parents=True)
            (Path(folder) / which / "yolov8n.onnx").write_bytes(b"half written")
        raise Interrupted(signal.SIGINT)

    monkeypatch.setattr(export_speed, "compare_export_speed", interrupted)
    run = run_main(capsys, "bench", "--export", "yolov8n.yaml", "--export-imgsz", "64")
    assert run.code == 130 and run.lines == ["interrupted"]
    assert tree(scratch) == (["models"] if existed else [])


def test_removed_on_failure_keeps_what_a_finished_block_wrote(tmp_path):
    from attndeploy.fileio import removed_on_failure

    with removed_on_failure([tmp_path / "a" / "b"]):
        (tmp_path / "a" / "b").mkdir(parents=True)
        (tmp_path / "a" / "b" / "f").write_text("kept")
    assert (tmp_path / "a" / "b" / "f").read_text() == "kept"
    with pytest.raises(KeyboardInterrupt), removed_on_failure([tmp_path / "a" / "c" / "d", tmp_path / "e"]):
        (tmp_path / "a" / "c" / "d").mkdir(parents=True)
        (tmp_path / "e").mkdir()
        raise KeyboardInterrupt
    assert tree(tmp_path) == ["a", "a/b", "a/b/f"]


# selftest -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("out,words", [("/proc/selftest.json", ["output directory must be writable", "/proc"]),
                                       ("folder", ["must not be a directory", "folder"]),
                                       ("blocker/r.json", ["output directory must be writable", "not a directory"])])
def test_selftest_out_that_cannot_be_written_is_one_line(out, words, scratch, capsys, monkeypatch):
    from attndeploy import selftest

    monkeypatch.setattr(selftest, "selftest", lambda *a: pytest.fail("the selftest ran"))
    (scratch / "folder").mkdir()
    (scratch / "blocker").write_text("a file")
    capsys.readouterr()
    assert selftest.main(["--names", "se", "--out", out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and all(w in err[0] for w in words), err
    assert tree(scratch) == ["blocker", "folder"]


def test_selftest_writes_its_report_and_summary(scratch, capsys):
    from attndeploy import selftest

    assert selftest.main(["--names", "se", "--out", "deep/r.json"]) == 0
    out = capsys.readouterr().out
    assert "report: deep/r.json" in out and (scratch / "deep" / "r.json").is_file()
    assert np.isfinite(float(out.split("ok ")[1].split()[0]))

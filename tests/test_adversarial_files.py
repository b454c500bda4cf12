"""Issue 9 §3, files and processes: broken ONNX files, `run` failures, output locations, leftovers, signals.

Each case runs the CLI in a subprocess (see `run_cli`) and checks the exit code, the last
stderr line, and what the folders hold afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.test_adversarial_cli import entries, model_file, run_cli, usage_error

SLOW_MODEL = """
import os
import time
from pathlib import Path

from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        out = os.environ.get("SLOW_WHILE_TEMP_IN")
        if out and any(Path(out).glob(".*.tmp")):
            time.sleep(300)  # a window to interrupt the export in: its temp file exists, the graph is traced
        return self.c(x)


def build():
    return Net()
"""


def slow_export(tmp_path: Path) -> list[str]:
    """An export of a small model that sleeps once its export's temp file exists in $SLOW_WHILE_TEMP_IN (the file
    lies outside the cwd)."""
    source = tmp_path.parent / f"{tmp_path.name}-slow_model.py"
    source.write_text(SLOW_MODEL, encoding="utf-8")
    return ["export", f"{source}:build", "--input", "1x3x16x16"]


def save_model(path: Path, nodes: list, inputs: list, initializers: list = ()) -> Path:
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, path.stem, inputs, [out], list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # one every onnxruntime reads
    path.write_bytes(model.SerializeToString())
    return path


def float_input(shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)


def external_model(path: Path, location: str) -> Path:
    """An Add with a weight stored as external data at `location` (which the test leaves missing or hostile)."""
    save_model(path, [helper.make_node("Add", ["input", "w"], ["output"])], [float_input([1, 4])],
               [numpy_helper.from_array(np.ones(4, np.float32), "w")])
    model = onnx.load(str(path), load_external_data=False)
    weight = model.graph.initializer[0]
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    path.write_bytes(model.SerializeToString())
    return path


# 10. lint on broken files ------------------------------------------------------------------

def empty_model(path: Path) -> Path:
    path.write_bytes(b"")
    return path


@pytest.mark.parametrize("make,rule", [
    (lambda d: empty_model(d / "m.onnx"), "the file must be an ONNX model"),
    (lambda d: external_model(d / "m.onnx", "weights.bin"), "the external data file must exist"),
    (lambda d: external_model(d / "m.onnx", "../../etc/passwd"), "external data must be a file inside"),
    (lambda d: external_model(d / "m.onnx", "/etc/passwd"), "external data must be a file inside"),
], ids=["empty", "missing-external-data", "escaping-external-data", "absolute-external-data"])
def test_lint_refuses_broken_model_files(tmp_path, make, rule):
    make(tmp_path)
    run = usage_error(tmp_path, "lint", "m.onnx", "--trt", "10", "--json")
    assert run.json()["rule"].startswith(rule), run.json()
    assert entries(tmp_path) == ["m.onnx"]


# 5. run: one line, exit 1 for a graph that fails, 2 for an input the graph cannot take ---------

def test_run_a_graph_that_fails_at_run_time_exits_1(tmp_path):
    indices = numpy_helper.from_array(np.array([5], np.int64), "idx")  # out of range for a dim of 4
    save_model(tmp_path / "m.onnx", [helper.make_node("Gather", ["input", "idx"], ["output"], axis=1)],
               [float_input([1, 4])], [indices])
    run = run_cli(tmp_path, "run", "m.onnx")
    assert run.code == 1 and run.last.startswith("check failed: onnxruntime-cpu failed running the model on 1x4")
    assert "out of data bounds" in run.last and run.stdout == ""


def test_run_at_a_shape_the_graph_cannot_take_exits_2(tmp_path):
    """Like `spd` exported with dynamic axes, then run at odd H and W."""
    save_model(tmp_path / "m.onnx", [helper.make_node("SpaceToDepth", ["input"], ["output"], blocksize=2)],
               [float_input(["N", "C", "H", "W"])])
    run = usage_error(tmp_path, "run", "m.onnx", "--shape", "1x4x5x5")
    assert "the input must be one the model can take" in run.last and "1x4x5x5" in run.last
    run = usage_error(tmp_path, "run", "m.onnx", "--shape", "1x4x6")
    assert "must have the model's rank" in run.last


# 6. output locations checked before any work ----------------------------------------------------

def test_export_into_a_folder_where_the_model_path_is_a_directory(tmp_path):
    (tmp_path / "D" / "se.onnx").mkdir(parents=True)
    run = usage_error(tmp_path, "export", "se", "--out", "D", "--json")
    assert "se.onnx" in run.last and "parity vs eager" not in run.stderr and "exporting with" not in run.stderr
    assert entries(tmp_path / "D") == ["se.onnx"] and entries(tmp_path / "D" / "se.onnx") == []


def _chattr(flag: str, path: Path) -> bool:
    return os.geteuid() == 0 and subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode == 0


@pytest.fixture()
def locked_dir(tmp_path):
    """A folder nothing can be replaced in: append-only (`chattr +a`, root) or read-only (chmod, others)."""
    folder = tmp_path / "locked"
    folder.mkdir()
    if os.geteuid() == 0:
        if not _chattr("+a", folder):
            pytest.skip("chattr +a is not available here")
    else:
        folder.chmod(0o555)
    yield folder
    _chattr("-a", folder)
    folder.chmod(0o755)


def test_a_folder_that_cannot_be_written_is_refused_and_left_untouched(tmp_path, locked_dir):
    run = usage_error(tmp_path, "export", "se", "--out", "locked", "--json")
    assert "must be writable" in run.last and "parity vs eager" not in run.stderr
    run = usage_error(tmp_path, "--names", "se", "--out", "locked/r.json", module="attndeploy.selftest")
    assert "must be writable" in run.last and "[1/1]" not in run.stderr
    assert os.listdir(locked_dir) == []  # no .write-probe-* or temp file


# 7. leftovers and signals ----------------------------------------------------------------------

def test_an_out_folder_the_run_created_is_removed_after_an_exit_2(tmp_path):
    source = model_file(tmp_path, forward="raise ValueError('broken forward')")
    run = usage_error(tmp_path, "export", source, "--input", "1x3x8x8", "--out", "new/deeper", "--json")
    assert "broken forward" in run.last
    assert entries(tmp_path) == ["model.py"]  # new/ and new/deeper/ were created, then removed
    (tmp_path / "kept").mkdir()
    usage_error(tmp_path, "export", source, "--input", "1x3x8x8", "--out", "kept")
    assert entries(tmp_path / "kept") == []  # the run did not create it: it stays


def test_stale_temp_files_of_dead_writers_are_removed(tmp_path):
    out = tmp_path / "D"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = out / f".se.onnx.{dead.pid}-abcd1234.tmp"
    live = out / f".se.onnx.{os.getpid()}-abcd1234.tmp"  # this test process is alive
    foreign = out / ".se.onnx.notours.tmp"
    for path in (stale, live, foreign):
        path.write_bytes(b"partial")
    run = run_cli(tmp_path, "export", "se", "--static", "--out", "D", "--json", "--no-bundle")
    assert run.code == 0, run.stderr
    assert entries(out) == sorted([live.name, foreign.name, "report.json", "se.onnx"])


def _start_export(cwd: Path, out: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "attndeploy", *slow_export(cwd), "--out", out], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "SLOW_WHILE_TEMP_IN": out})


def _wait_for_temp(proc: subprocess.Popen, folder: Path, timeout: float = 240) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        temps = list(folder.glob(".*.tmp")) if folder.exists() else []
        if temps:
            return temps[0]
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"no temp file appeared in {folder} (exit {proc.poll()})")


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_interrupt_prints_one_line_and_leaves_nothing(tmp_path, signum, code):
    proc = _start_export(tmp_path, "D")
    _wait_for_temp(proc, tmp_path / "D")
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "interrupted" and out == ""
    assert entries(tmp_path) == []  # the temp file and the folder the run created are gone


def test_killed_export_rerun_into_the_same_folder_is_byte_identical(tmp_path):
    killed = _start_export(tmp_path, "D")
    _wait_for_temp(killed, tmp_path / "D")
    killed.kill()
    killed.communicate(timeout=60)
    assert [p.name for p in (tmp_path / "D").glob(".*.tmp")], "the SIGKILL left no temp file to clean up"

    for out in ("D", "fresh"):
        run = run_cli(tmp_path, *slow_export(tmp_path), "--out", out, timeout=600)
        assert run.code == 0, run.stderr
    assert entries(tmp_path / "D") == entries(tmp_path / "fresh")  # no *.tmp left in D
    assert (tmp_path / "D" / "build.onnx").read_bytes() == (tmp_path / "fresh" / "build.onnx").read_bytes()

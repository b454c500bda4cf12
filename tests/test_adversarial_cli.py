"""Issue 9 §3, as a hostile-but-realistic user runs the CLI, cwd in tmp_path.

Every case asserts the exit code, that stderr holds no traceback and ends with the one
`error: ...` line (exit 2), stdout's JSON with a strict parser where `--json` is given,
and what the output folder holds afterwards. `run_cli` does the common part: in-process,
with file descriptors 1 and 2 and `sys.stdout`/`sys.stderr` on files of its own (what a
terminal would show, native writes included); `process=True` where a case needs its own
process (`python -m`, as the user types it).
"""

from __future__ import annotations

import importlib
import io
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest


def strict_json(text: str) -> object:
    """`json.loads` that refuses NaN/Infinity (not JSON) and anything after the one value."""
    def refuse(token: str) -> None:
        raise ValueError(f"{token} is not standard JSON")

    return json.loads(text, parse_constant=refuse)


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def last(self) -> str:
        lines = self.stderr.strip().splitlines()
        return lines[-1] if lines else ""

    def json(self) -> dict:
        value = strict_json(self.stdout)
        assert isinstance(value, dict), self.stdout
        return value


ENTRY_POINTS = {"attndeploy": "attndeploy.cli.main", "attndeploy.selftest": "attndeploy.selftest"}


def _in_process(cwd: Path, module: str, args: list[str]) -> Run:
    """`module`'s `main(args)` in `cwd`, its fds 1 and 2 and `sys.stdout`/`sys.stderr` on temp files."""
    main = importlib.import_module(ENTRY_POINTS[module]).main
    here, streams = os.getcwd(), (sys.stdout, sys.stderr)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        for stream in streams:
            stream.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        sys.stdout, sys.stderr = (io.TextIOWrapper(os.fdopen(os.dup(fd), "wb"), "utf-8", write_through=True)
                                  for fd in (1, 2))
        try:
            os.chdir(cwd)
            try:
                code = main(args)
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else 1
        finally:
            os.chdir(here)
            for stream in (sys.stdout, sys.stderr):
                stream.close()
            sys.stdout, sys.stderr = streams
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
        out.seek(0)
        err.seek(0)
        return Run(code, out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace"))


def run_cli(cwd: Path, *args: str, module: str = "attndeploy", timeout: float = 300, process: bool = False) -> Run:
    """`python -m MODULE ARGS` in `cwd` (in-process unless `process`); checks what every run must hold (see the
    module docstring)."""
    if process:
        proc = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True,
                              timeout=timeout)
        run = Run(proc.returncode, proc.stdout, proc.stderr)
    else:
        run = _in_process(cwd, module, list(args))
    assert "Traceback" not in run.stderr, run.stderr
    if run.code == 2:
        assert run.last.startswith("error: "), run.stderr
        assert sum(line.startswith("error: ") for line in run.stderr.splitlines()) == 1, run.stderr
    if "--json" in args:
        run.json()  # exactly one standard JSON object, for every exit code
    return run


def usage_error(cwd: Path, *args: str, module: str = "attndeploy", process: bool = False) -> Run:
    """A run that must be refused as bad input (exit 2); with --json the error object carries the fields."""
    run = run_cli(cwd, *args, module=module, process=process)
    assert run.code == 2, run.stderr
    if "--json" in args:
        err = run.json()
        assert set(err) >= {"error", "rule", "expected", "actual"} and run.last == f"error: {err['error']}"
    return run


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


MODEL = """
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x):
            {forward}
            return self.c(x)

    def build():
        {build}
        return Net()
    """


def model_file(tmp_path: Path, top: str = "", forward: str = "pass", build: str = "pass") -> str:
    body = textwrap.dedent(MODEL).format(forward=forward, build=build)
    write(tmp_path / "model.py", top + "\n" + body)
    return "model.py:build"


# 1. user code that exits ------------------------------------------------------------------

@pytest.mark.parametrize("top,build,names,actual", [
    ("import sys\nsys.exit(0)", "pass", "'model.py' (on import)", "SystemExit(0)"),
    ("import argparse\np = argparse.ArgumentParser()\np.add_argument('--epochs', required=True)\np.parse_args()",
     "pass", "'model.py' (on import)", "SystemExit(2)"),
    ("", "raise KeyboardInterrupt", "factory 'model.py:build'", "KeyboardInterrupt raised by the code itself"),
    ("", "raise SystemExit('bye')", "factory 'model.py:build'", "SystemExit('bye')"),
], ids=["sys.exit-at-import", "argparse-at-import", "KeyboardInterrupt-in-factory", "SystemExit-in-factory"])
def test_user_code_that_exits_is_bad_input(tmp_path, top, build, names, actual):
    source = model_file(tmp_path, top=top, build=build)
    run = usage_error(tmp_path, "export", source, "--input", "1x3x8x8", "--out", "D", "--json")
    err = run.json()
    assert names in err["rule"] and actual in err["actual"], err
    assert not (tmp_path / "D").exists() and not (tmp_path / "models").exists()


# 2. --json purity -------------------------------------------------------------------------

def test_prints_in_user_code_go_to_stderr(tmp_path):
    source = model_file(tmp_path, top="print('noise at import')", forward="print('noise in forward')",
                        build="print('noise in build')")
    run = run_cli(tmp_path, "lint", source, "--input", "1x3x8x8", "--json")
    assert run.code == 0 and run.json()["passed"] is True and run.json()["findings"] == []
    for noise in ("import", "forward", "build"):
        assert f"noise in {noise}" in run.stderr or f"noise at {noise}" in run.stderr


def test_prints_during_export_go_to_stderr(tmp_path):
    source = model_file(tmp_path, top="print('noise at import')", forward="print('noise in forward')")
    run = run_cli(tmp_path, "export", source, "--input", "1x3x8x8", "--out", "D", "--json", "--no-bundle")
    assert run.code == 0, run.stderr
    report = run.json()
    assert report["parity"]["passed"] and "noise in forward" in run.stderr and "noise at import" in run.stderr
    assert strict_json((tmp_path / "D" / "report.json").read_text())["parity"]["passed"]
    assert entries(tmp_path / "D") == ["build.onnx", "report.json"]


def test_exit_1_with_json_is_one_object(tmp_path):
    blog = Path(__file__).resolve().parent / "blog_models.py"
    run = run_cli(tmp_path, "lint", f"{blog}:SAGANBlog", "--kwargs", '{"in_dim": 32}', "--input", "1x32x8x8",
                  "--json")
    assert run.code == 1 and run.json()["passed"] is False and "gamma" in run.stdout


@pytest.mark.parametrize("args,rule", [
    (["export", "se", "--opset", "99", "--out", "D", "--json"], "opset"),
    (["export", "se", "--bogus-flag", "--out", "D", "--json"], "unrecognized arguments"),
    (["export", "se", "--input", "1xbig", "--out", "D", "--json"], "a shape must be positive integers"),
    (["list", "extra", "--json"], "unrecognized arguments"),
], ids=["library-refusal", "argparse-unknown-flag", "converter-refusal", "list-argparse"])
def test_exit_2_with_json_is_one_error_object(tmp_path, args, rule):
    run = usage_error(tmp_path, *args)
    assert rule in run.json()["error"] and entries(tmp_path) == []


# 3. strict JSON ---------------------------------------------------------------------------

def test_nan_model_is_a_finding_in_standard_json(tmp_path):
    """A model computing NaN: never a pass, said as such, and no NaN/Infinity tokens in --json or report.json."""
    source = model_file(tmp_path, forward="x = x * float('nan')")
    run = run_cli(tmp_path, "export", source, "--input", "1x3x8x8", "--out", "D", "--json")
    out = run.json()
    assert run.code == 1, run.stderr
    assert out["passed"] is False and out["parity"]["passed"] is False
    assert "the model computes NaN/Inf in eager at 1x3x8x8" in run.stderr.splitlines()[-1]
    report = strict_json((tmp_path / "D" / "report.json").read_text())
    assert report["parity"]["outputs"][0]["nonfinite_reference"] > 0
    assert sorted(p.name for p in (tmp_path / "D").iterdir()) == ["build.rejected.onnx", "report.json"]


# 4. sizes checked before allocating ------------------------------------------------------

@pytest.mark.parametrize("args,words", [
    (["export", "se", "--input", "1x64x100000x100000"], ["memory", "2.3 TiB"]),
    (["export", "se", "--kwargs", '{"channels": 1048576, "reduction": 16}'], ["weights of se", "memory"]),
    (["lint", "se", "--kwargs", '{"channels": 1048576, "reduction": 16}'], ["weights of se", "memory"]),
    (["lint", "se", "--input", "1x64x100000x100000"], ["memory"]),
    (["run", "m.onnx", "--shape", "1x999999999999"], ["memory", "3.6 TiB"]),
    (["bench", "se", "--copy-mib", "100000000"], ["--copy-mib", "memory"]),
    (["bench", "se", "--batch", "100000000"], ["memory"]),
    (["export", "se", "--seed", "99999999999999999999999"], ["0..2**63-1"]),
    (["bench", "se", "--seed", "-1"], ["0..2**63-1"]),
], ids=["export-input", "export-kwargs", "lint-kwargs", "lint-input", "run-shape", "bench-copy", "bench-batch", "export-seed",
        "bench-seed"])
def test_sizes_and_seeds_refused_before_any_work(tmp_path, args, words):
    run = usage_error(tmp_path, *args, "--json")
    for word in words:
        assert word in run.last, run.last
    assert "half of this machine's memory" in run.last or "seed" in run.last
    assert entries(tmp_path) == []  # nothing written: no models/, no plot, no temp files


# 9. --kwargs is strict JSON with finite, sane numbers -------------------------------------

@pytest.mark.parametrize("kwargs,key,actual", [
    ('{"gamma": Infinity}', "gamma", "Infinity (not JSON)"),
    ('{"channels": 64, "b": NaN}', "b", "NaN (not JSON)"),
    ('{"gamma": 1e999}', "gamma", "inf"),
    ('{"channels": 99999999999}', "channels", "99999999999"),
], ids=["Infinity", "NaN", "overflowing-float", "huge-int"])
def test_kwargs_numbers_must_be_finite_and_sane(tmp_path, kwargs, key, actual):
    run = usage_error(tmp_path, "export", "eca", "--kwargs", kwargs, "--out", "D", "--json")
    err = run.json()
    assert f"model argument {key!r}" in err["error"] and actual in err["error"], err
    assert not (tmp_path / "D").exists()


# 6 and 8. selftest: its parser and its --out, before any stage -----------------------------

def test_selftest_unknown_flag_is_one_line(tmp_path):
    run = usage_error(tmp_path, "--bogus", module="attndeploy.selftest")
    assert run.stderr.strip() == run.last and "unrecognized arguments: --bogus" in run.last
    assert "usage:" not in run.stderr and entries(tmp_path) == []


def test_selftest_out_under_a_file_fails_before_any_stage(tmp_path):
    (tmp_path / "blocker").write_text("a file")
    run = usage_error(tmp_path, "--names", "se", "--out", "blocker/sub/report.json", module="attndeploy.selftest")
    assert "output directory must be writable" in run.last and "not a directory" in run.last and "blocker" in run.last
    assert "[1/1]" not in run.stderr and entries(tmp_path) == ["blocker"]


def test_selftest_out_that_is_a_directory_fails_before_any_stage(tmp_path):
    (tmp_path / "r.json").mkdir()
    run = usage_error(tmp_path, "--names", "se", "--out", "r.json", module="attndeploy.selftest")
    assert "must not be a directory" in run.last and "[1/1]" not in run.stderr


# the cases above run in-process; `python -m` itself, as typed, for one refusal and each entry point ---------

@pytest.mark.parametrize("module,args", [
    ("attndeploy", ["list", "extra", "--json"]),
    ("attndeploy.selftest", ["--bogus"]),
], ids=["attndeploy", "attndeploy.selftest"])
def test_python_dash_m_refuses_like_the_in_process_run(tmp_path, module, args):
    as_typed = usage_error(tmp_path, *args, module=module, process=True)
    in_process = usage_error(tmp_path, *args, module=module)
    assert (as_typed.code, as_typed.stdout, as_typed.last) == (in_process.code, in_process.stdout, in_process.last)
    assert entries(tmp_path) == []

"""Issue 9 §3, the helpers the CLI and the Python API share, in-process: user code, limits, JSON, files, names."""

from __future__ import annotations

import json
import math
import os
import signal
import sys

import numpy as np
import pytest

import attndeploy
from attndeploy import fileio, limits
from attndeploy.errors import UsageError, unknown_name
from attndeploy.usercode import Interrupted, calling_user_code
from tests.test_adversarial_cli import strict_json


@pytest.fixture()
def default_sigint():
    """Python's own SIGINT handler (a test runner may have installed another) for the block."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


# 1. calling_user_code ---------------------------------------------------------------------------

@pytest.mark.parametrize("exit_with,actual", [(lambda: sys.exit(0), "SystemExit(0)"),
                                              (lambda: sys.exit("usage: x"), "SystemExit('usage: x')")])
def test_user_code_that_exits_becomes_a_usage_error(exit_with, actual):
    with pytest.raises(UsageError) as caught, calling_user_code("the factory 'm.py:build'"):
        exit_with()
    assert caught.value.rule == "the factory 'm.py:build' tried to exit the process"
    assert caught.value.actual == actual and "__main__" in caught.value.hint


def test_user_raised_keyboard_interrupt_becomes_a_usage_error(default_sigint):
    with pytest.raises(UsageError, match="raised KeyboardInterrupt"), calling_user_code("the forward"):
        raise KeyboardInterrupt
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_a_real_ctrl_c_stays_an_interrupt(default_sigint):
    with pytest.raises(KeyboardInterrupt) as caught, calling_user_code("the forward"):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # the handler runs between bytecodes
            pass
    assert not isinstance(caught.value, UsageError)


def test_interrupted_and_ordinary_errors_pass_through():
    with pytest.raises(Interrupted), calling_user_code("the forward"):
        raise Interrupted(signal.SIGTERM)
    with pytest.raises(ValueError, match="mine"), calling_user_code("the forward"):
        raise ValueError("mine")


def test_load_model_refuses_a_file_that_exits(tmp_path):
    from attndeploy.loading import load_model

    (tmp_path / "m.py").write_text("import sys\nsys.exit(3)\n")
    with pytest.raises(UsageError, match=r"the model file .*m\.py' \(on import\) tried to exit"):
        load_model(f"{tmp_path / 'm.py'}:build")
    assert not [name for name, mod in sys.modules.items()
                if name.startswith("attndeploy_user_") and getattr(mod, "__file__", "") == str(tmp_path / "m.py")]


# 4. limits -------------------------------------------------------------------------------------

def test_tensor_bytes_limit_is_half_the_machine():
    assert limits.memory_limit() == limits.physical_memory() // 2 > 0
    assert limits.check_tensor_bytes((1, 64, 56, 56), "x") == 64 * 56 * 56 * 4
    with pytest.raises(UsageError, match="half of this machine's memory") as caught:
        limits.check_tensor_bytes((1, 64, 100000, 100000), "--input 1x64x100000x100000")
    assert caught.value.rule.startswith("--input 1x64x100000x100000 must fit")
    with pytest.raises(UsageError):
        limits.check_tensor_bytes((limits.memory_limit() // 2 + 1,), "fp64", itemsize=2)


@pytest.mark.parametrize("seed", [-1, 2**63, 2**70, 1.5, "3", True, None])
def test_seeds_outside_what_torch_takes(seed):
    with pytest.raises(UsageError, match=r"0\.\.2\*\*63-1"):
        limits.check_seed(seed, "seed")
    assert limits.check_seed(2**63 - 1) == 2**63 - 1


def test_module_bytes_are_estimated_on_the_meta_device():
    from attndeploy.registry import create

    assert limits.check_module_bytes(lambda: create("se", channels=64), "se") == sum(
        p.numel() * 4 for p in create("se", channels=64).parameters())
    with pytest.raises(UsageError, match="the weights of se"):
        limits.check_module_bytes(lambda: create("se", channels=1 << 20, reduction=16), "se")
    assert limits.check_module_bytes(lambda: create("se", channels=-3), "se") is None  # the real build reports it


# 3. strict JSON --------------------------------------------------------------------------------

def test_json_safe_writes_non_finite_values_as_strings(tmp_path):
    value = {"a": math.inf, "b": [-math.inf, math.nan, 1.5], "c": (np.float32("nan"), np.int64(3)),
             "d": np.array([1.0, np.inf]), "e": np.bool_(True), "f": None}
    expected = {"a": "inf", "b": ["-inf", "nan", 1.5], "c": ["nan", 3], "d": [1.0, "inf"], "e": True, "f": None}
    assert strict_json(fileio.dumps_strict(value)) == expected
    fileio.write_json_atomic(tmp_path / "r.json", value)
    assert strict_json((tmp_path / "r.json").read_text()) == expected
    with pytest.raises(ValueError):
        strict_json(json.dumps({"x": math.nan}))


# 6 and 7. output files and folders -------------------------------------------------------------

def test_check_output_file_refuses_directories_and_blocked_parents(tmp_path):
    (tmp_path / "dir.onnx").mkdir()
    (tmp_path / "blocker").write_text("x")
    with pytest.raises(UsageError, match="must not be a directory"):
        fileio.check_output_file(tmp_path / "dir.onnx")
    with pytest.raises(UsageError, match="must be writable.*blocker.*not a directory"):
        fileio.check_output_file(tmp_path / "blocker" / "sub" / "m.onnx")
    fileio.check_output_file(tmp_path / "new" / "deeper" / "m.onnx")  # creatable: fine, and not created
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker", "dir.onnx"]


def test_created_folders_are_tracked_and_only_empty_ones_removed(tmp_path):
    fileio.remove_created_dirs()
    fileio.ensure_writable_dir(tmp_path / "a" / "b")
    fileio.ensure_writable_dir(tmp_path / "c")
    (tmp_path / "c" / "keep.txt").write_text("x")
    assert os.listdir(tmp_path / "a" / "b") == []  # the probe left nothing
    removed = fileio.remove_created_dirs()
    assert sorted(p.name for p in removed) == ["a", "b"] and sorted(os.listdir(tmp_path)) == ["c"]


def test_temp_names_carry_the_pid_and_dead_writers_are_swept(tmp_path):
    tmp = fileio.temp_path(tmp_path / "m.onnx")
    assert tmp.name.startswith(f".m.onnx.{os.getpid()}-") and tmp.name.endswith(".tmp")
    dead = tmp_path / ".m.onnx.999999999-abcdefgh.tmp"  # above any pid_max
    dead.write_bytes(b"")
    assert fileio.remove_stale_temps(tmp_path) == [dead] and tmp.exists()
    fileio.remove_own_temps()
    assert not tmp.exists()


# 11. unknown names ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [None, 3, ("se",)])
def test_unknown_name_that_is_not_a_string(name):
    with pytest.raises(UsageError) as caught:
        attndeploy.get_spec(name)
    assert f"got {name!r}" in str(caught.value) and "expected one of acmix, cbam" in str(caught.value)
    assert "did you mean" not in str(unknown_name("module", None, ["se"]))


def test_model_files_are_told_from_registry_names_by_suffix_in_any_case():
    from attndeploy.settings_checks import source_label
    from attndeploy.sources import is_registry_name

    assert is_registry_name("se") and not any(is_registry_name(s) for s in ("best.PT", "y.YAML", "m.pth", "f.py"))
    assert [source_label(s) for s in ("runs/best.pth", "cfg/y.YAML", "pkg.mod:make", "se")] == ["best", "y", "make",
                                                                                                  "se"]

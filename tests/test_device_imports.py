"""The device-side commands never import torch (nor anything else only the [export] extra brings).

Each command runs in a fresh interpreter whose import system refuses the export-only
packages (a meta-path finder that raises), then reports any of them that got loaded
anyway. A command is one line of DEVICE_COMMANDS (CLI arguments, `{onnx}` for the test's
graph, `{bundle}` for a bundle `attndeploy export cbam` wrote, `{nudged}` for a copy of it with
one Conv weight channel scaled by 1.01) or DEVICE_SNIPPETS (Python code run after the guard).
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bundles import NUDGES, cbam_bundle, nudged_copy  # noqa: F401 (fixture)
from tests.onnx_graphs import conv_relu

ROOT = Path(__file__).resolve().parents[1]
# What the core install (numpy, onnx, polygraphy) does not bring: the [export] extra and the test tools.
EXPORT_ONLY = ("torch", "torchvision", "ultralytics", "onnxscript", "onnxsim", "onnxslim", "tqdm", "PIL", "matplotlib")

# (arguments, expected exit code)
DEVICE_COMMANDS: list[tuple[list[str], int]] = [
    (["--help"], 0),
    (["lint", "{onnx}", "--trt", "10"], 0),
    (["lint", "{onnx}", "--trt", "8.6", "--json"], 0),
    (["run", "{onnx}", "--shape", "1x3x8x8", "--runs", "1"], 0),
    (["run", "{onnx}", "--backend", "tensorrt"], 2),  # not an engine: refused before TensorRT is needed
    (["lint", "{onnx}", "--trt", "7"], 2),
    (["no-such-command"], 2),
    (["verify", "{bundle}"], 0),
    (["verify", "{bundle}", "--json"], 0),
    (["verify", "{nudged}"], 1),                      # names the module: localisation without torch
    (["verify", "{bundle}", "--backend", "tensorrt"], 2),  # no engine beside the graph
    (["verify", "{bundle}", "--engine", "{onnx}"], 2),
]
DEVICE_SNIPPETS: list[str] = [
    "import attndeploy; print(attndeploy.__version__, sorted(attndeploy.__all__)[:2])",
    "from attndeploy.bundle import write_build_script, write_triton_repository, write_labels, write_metadata",
    "from attndeploy.runtimes.onnxruntime_runner import OnnxRuntimeRunner; from attndeploy.tensorrt.runner import "
    "TensorRTRunner",
    "from attndeploy.tensorrt.profiles import derive_profile; from attndeploy.lint import lint_onnx",
    "from attndeploy.tensorrt.builder import build_engine",
    "from attndeploy.bundle.verify import verify_bundle; from attndeploy.tensorrt.exposed import exposed_engine_values",
    "from attndeploy.localise.divergence import locate_in_graph; from attndeploy.tensorrt.inspect import engine_precision",
]

GUARD = f"""
import atexit, sys
BLOCKED = {EXPORT_ONLY!r}
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            print("BLOCKED IMPORT " + name, file=sys.stderr)
            raise ModuleNotFoundError("No module named " + repr(name), name=name)  # as if not installed
        return None
sys.meta_path.insert(0, Refuse())
@atexit.register
def _loaded():
    found = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    if found:
        print("BLOCKED LOADED " + " ".join(found), file=sys.stderr)
"""
CLI = GUARD + "from attndeploy.cli.main import main\nsys.exit(main(sys.argv[1:]))\n"


def run_guarded(code: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def small_onnx(tmp_path_factory):
    return conv_relu(tmp_path_factory.mktemp("device") / "small.onnx", hw=8)


@pytest.fixture(scope="module")
def nudged_bundle(cbam_bundle, tmp_path_factory):  # noqa: F811
    return nudged_copy(cbam_bundle, tmp_path_factory.mktemp("device") / "nudged", NUDGES["cbam"][0])


@pytest.mark.parametrize(("args", "code"), DEVICE_COMMANDS, ids=[" ".join(a) for a, _ in DEVICE_COMMANDS])
def test_device_commands_do_not_import_torch(small_onnx, request, args, code):
    files = {"{onnx}": small_onnx}
    if any("{bundle}" in a or "{nudged}" in a for a in args):
        files.update({"{bundle}": request.getfixturevalue("cbam_bundle"),
                      "{nudged}": request.getfixturevalue("nudged_bundle")})
    for key, value in files.items():
        args = [a.replace(key, str(value)) for a in args]
    done = run_guarded(CLI, args, small_onnx.parent)
    assert "BLOCKED" not in done.stderr, done.stderr
    assert done.returncode == code, done.stderr
    if args[0] == "verify" and code == 1:
        assert f"diverges first at `{NUDGES['cbam'][1]}`" in done.stderr.splitlines()[-1], done.stderr


@pytest.mark.parametrize("snippet", DEVICE_SNIPPETS)
def test_device_modules_do_not_import_torch(tmp_path, snippet):
    done = run_guarded(GUARD + snippet, [], tmp_path)
    assert "BLOCKED" not in done.stderr and done.returncode == 0, done.stderr


def test_a_command_that_needs_the_export_extra_says_which_to_install(tmp_path):
    for args in (["export", "cbam"], ["lint", "cbam", "--input", "1x64x8x8", "--json"]):
        done = run_guarded(CLI, args, tmp_path)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.strip().splitlines()[-1] == ("error: this command needs torch, which the core install (the "
                                                        "device side) does not bring: expected pip install "
                                                        "'attndeploy[export]', got no module named 'torch'")


def test_the_help_lines_are_the_commands_own():
    """`attndeploy --help` lists each command with main.COMMANDS' line, which must be the one its module declares."""
    import argparse

    from attndeploy.cli.main import COMMANDS

    for name, (module, help_line) in COMMANDS.items():
        commands = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(module).add_parser(commands)
        assert [a.help for a in commands._choices_actions] == [help_line], name


def test_the_guard_catches_a_torch_import(tmp_path):
    """The guard itself: the registry (torch modules) and `attndeploy.create` are refused under it."""
    for snippet in ("import attndeploy.registry", "import attndeploy; attndeploy.create"):
        done = run_guarded(GUARD + snippet, [], tmp_path)
        assert done.returncode != 0 and "BLOCKED IMPORT torch" in done.stderr, done.stderr

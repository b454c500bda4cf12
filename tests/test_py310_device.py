"""The device install on the oldest Python we support: CPython 3.10 (JetPack 6's), the core package plus [ort], no torch.

One test: it builds a 3.10 venv in a temp folder (pyenv's 3.10.13), installs a copy of this
checkout with `pip install <copy>[ort]` (pip's own configuration: the same indexes the main
venv was installed from), checks that torch is absent, then runs each line of PY310_COMMANDS
with the venv's `attndeploy` on files the main venv wrote: a small graph, and the device bundles
of `tests/bundles.py` (cbam, an fp16 cbam, YOLOv8n+CBAM from a YAML with --custom-modules), two of
them with one Conv weight channel scaled by 1.01, which `verify` must fail naming the output
and the module. Adding a command is one line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.bundles import NUDGES, cbam_bundle, cbam_fp16_bundle, nudged_copy, yolo_bundle, yolo_env  # noqa: F401
from tests.onnx_graphs import conv_relu

ROOT = Path(__file__).resolve().parents[1]
PYENV_310 = Path.home() / ".pyenv" / "versions" / "3.10.13" / "bin" / "python"

# (arguments of `attndeploy`, expected exit code); `{onnx}`: a graph written by the main venv, `{bundle}`: its folder
PY310_COMMANDS: list[tuple[list[str], int]] = [
    (["--help"], 0),
    (["lint", "{onnx}", "--trt", "10"], 0),
    (["lint", "{onnx}", "--trt", "8.6", "--json"], 0),
    (["run", "{onnx}", "--shape", "2x3x8x8", "--runs", "2"], 0),
    (["export", "cbam"], 2),  # no [export] extra: one line naming it
    (["verify", "{cbam}"], 0),
    (["verify", "{cbam_fp16}"], 0),   # judged by the fp16 budget
    (["verify", "{yolo}", "--json"], 0),
    (["verify", "{cbam_nudged}"], 1),
    (["verify", "{yolo_nudged}"], 1),
]
# the bundles of the `{...}` names above: (fixture, the Conv nudged in a copy, or None)
BUNDLES = {"{cbam}": ("cbam_bundle", None), "{cbam_fp16}": ("cbam_fp16_bundle", None), "{yolo}": ("yolo_bundle", None),
           "{cbam_nudged}": ("cbam_bundle", "cbam"), "{yolo_nudged}": ("yolo_bundle", "yolov8n-cbam")}
# Python run with the venv's interpreter (the bundle writers are torch-free too)
PY310_SNIPPETS: list[str] = [
    "import sys, attndeploy; assert sys.version_info[:2] == (3, 10), sys.version; print(attndeploy.__file__)",
    "import importlib.util as u; missing = [m for m in ('torch', 'torchvision', 'ultralytics') if u.find_spec(m)]; "
    "assert not missing, missing",
    "import attndeploy.tensorrt.builder, attndeploy.tensorrt.runner, attndeploy.tensorrt.profiles",  # engine builds
    "from pathlib import Path; from attndeploy.bundle import write_build_script, write_triton_repository; "
    "b = Path('{bundle}'); write_build_script([b / 'small.onnx'], b, 'x', (1, 3, 8, 8), (2, 3, 8, 8), (4, 3, 8, 8)); "
    "write_triton_repository(b / 'small.onnx', b, 'small', max_batch=4)",
]


def python310() -> list[str] | None:
    """A command starting CPython 3.10: pyenv's 3.10.13, else `python3.10` (pyenv's shim with PYENV_VERSION)."""
    candidates = [[str(PYENV_310)]] if PYENV_310.is_file() else []
    if shutil.which("python3.10"):
        candidates.append(["env", "PYENV_VERSION=3.10.13", "python3.10"])
    for command in candidates:
        done = subprocess.run([*command, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True,
                              text=True)
        if done.returncode == 0 and done.stdout.strip() == "(3, 10)":
            return command
    return None


def _source_copy(dst: Path) -> Path:
    """What pip needs to build the package, copied (an in-tree build would leave build/ and egg-info here)."""
    shutil.copytree(ROOT / "attndeploy", dst / "attndeploy", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, dst / name)
    return dst


def _run(command: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _bundles(request: pytest.FixtureRequest, folder: Path) -> dict[str, tuple[Path, str]]:
    """`{name}` -> (its bundle folder, the module `verify` must name when it fails, else "")."""
    found = {}
    for key, (fixture, nudged) in BUNDLES.items():
        bundle = request.getfixturevalue(fixture)
        if nudged is None:
            found[key] = (bundle, "")
        else:
            node, module = NUDGES[nudged]
            found[key] = (nudged_copy(bundle, folder / key.strip("{}"), node), module)
    return found


def _named_in(done: subprocess.CompletedProcess[str], module: str) -> bool:
    last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
    return "output '" in last and " differs at " in last and f"diverges first at `{module}`" in last


@pytest.mark.slow
def test_core_install_on_python_3_10_runs_the_device_commands_without_torch(tmp_path, request):
    python = python310()
    if python is None:
        message = f"CPython 3.10 is not installed (expected pyenv's {PYENV_310} or python3.10)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}: CI must prove the device install on the oldest Python")
        pytest.skip(message)
    venv = tmp_path / "venv310"
    made = _run([*python, "-m", "venv", str(venv)], tmp_path)
    assert made.returncode == 0, made.stderr
    source = _source_copy(tmp_path / "src")
    # --no-compile: no byte-compiling of every installed file up front (half of pip's time here); imports compile
    installed = _run([str(venv / "bin" / "pip"), "install", "--quiet", "--no-compile", f"{source}[ort]"], tmp_path,
                     timeout=600)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    work = tmp_path / "work"  # not the checkout: the venv's copy of attndeploy must be the one imported
    work.mkdir()
    onnx_file = conv_relu(work / "small.onnx", hw=8)  # written by this (the main) venv
    bundles = _bundles(request, tmp_path / "bundles")
    failures = []
    for args, code in PY310_COMMANDS:
        argv = [a.replace("{onnx}", str(onnx_file)) for a in args]
        argv = [str(bundles[a][0]) if a in bundles else a for a in argv]
        done = _run([str(venv / "bin" / "attndeploy"), *argv], work)
        module = next((bundles[a][1] for a in args if a in bundles), "")
        if done.returncode != code or "Traceback" in done.stderr or (module and not _named_in(done, module)):
            failures.append(f"attndeploy {' '.join(argv)}: exit {done.returncode} (expected {code}"
                            f"{f', naming {module}' if module else ''})\n{done.stderr}")
    for snippet in PY310_SNIPPETS:
        done = _run([str(venv / "bin" / "python"), "-c", snippet.replace("{bundle}", str(work))], work)
        if done.returncode != 0 or (snippet.startswith("import sys") and str(venv) not in done.stdout):
            failures.append(f"python -c {snippet!r}: exit {done.returncode}\n{done.stdout}{done.stderr}")
    assert not failures, "\n\n".join(failures)
    assert (work / "build_engine.sh").is_file() and (work / "triton" / "small" / "config.pbtxt").is_file()

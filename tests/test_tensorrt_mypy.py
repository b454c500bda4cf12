"""`attndeploy.tensorrt` type-checks against `tensorrt-stubs` (no TensorRT library needed).

tensorrt-stubs 10.13.0.35.1 ships `tensorrt/__init__.pyi` without a `py.typed` marker (so
mypy ignores it) and with five syntax errors in `tensorrt_bindings/tensorrt.pyi` (a
parameter named `in`, a non-default parameter after a default one). `write_fixed_stubs`
copies the stubs with those fixed into a directory for `mypy_path`:

    python tests/test_tensorrt_mypy.py .typings    # then mypy with mypy_path = ".typings"
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STUB_FILES = ("tensorrt/__init__.pyi", "tensorrt_bindings/__init__.pyi", "tensorrt_bindings/tensorrt.pyi")
CONFIG = """[mypy]
python_version = 3.10
ignore_missing_imports = True
mypy_path = {stubs}

[mypy-tensorrt,tensorrt.*,tensorrt_bindings,tensorrt_bindings.*]
ignore_errors = True
"""


def installed_stubs() -> Path | None:
    spec = importlib.util.find_spec("tensorrt_stubs")
    if spec is None or spec.origin is None:
        return None
    site = Path(spec.origin).parent.parent
    return site if all((site / f).is_file() for f in STUB_FILES) else None


def write_fixed_stubs(dst: Path) -> Path:
    """Copy the installed tensorrt-stubs into `dst` with their syntax errors fixed; returns `dst`."""
    site = installed_stubs()
    if site is None:
        raise FileNotFoundError("tensorrt-stubs is not installed (pip install --no-deps tensorrt-stubs)")
    for rel in STUB_FILES:
        text = (site / rel).read_text()
        text = re.sub(r"([(,]\s*)in(\s*:)", r"\1in_\2", text)  # `in` is a keyword
        text = re.sub(r"(power: Weights = None, channel_axis: int)\)", r"\1 = ...)", text)
        ast.parse(text, filename=rel)
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return dst


def run_mypy(tmp_path: Path, *targets: str) -> list[str]:
    stubs = write_fixed_stubs(tmp_path / "stubs")
    config = tmp_path / "mypy.ini"
    config.write_text(CONFIG.format(stubs=stubs))
    out = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(config), "--cache-dir",
                          str(tmp_path / "cache"), *targets], cwd=ROOT, capture_output=True, text=True)
    return [line for line in out.stdout.splitlines() if ": error:" in line]


@pytest.mark.slow
def test_package_type_checks_against_the_tensorrt_stubs(tmp_path):
    """The whole package, the TensorRT layer included, against the (fixed) tensorrt-stubs."""
    if installed_stubs() is None:
        message = "tensorrt-stubs is not installed (pip install --no-deps tensorrt-stubs)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}: CI must type-check the TensorRT layer")
        pytest.skip(message)
    canary = tmp_path / "canary.py"
    canary.write_text("import tensorrt as trt\n\ntrt.Builder(trt.Logger()).create_network_v3()\n")
    errors = run_mypy(tmp_path, str(canary), "attndeploy")  # one run: the canary's error shows the stubs in effect
    assert any("create_network_v3" in line for line in errors if "canary.py" in line), "stubs not in effect"
    assert [line for line in errors if line.startswith("attndeploy/")] == []


if __name__ == "__main__":
    print(write_fixed_stubs(Path(sys.argv[1] if len(sys.argv) > 1 else ".typings")))

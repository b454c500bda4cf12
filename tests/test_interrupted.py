"""Interrupting the selftest (issue 18): one subprocess each, a real signal once the work has started. Exit
128 + signal with one `interrupted` line and no traceback; no temporary folder, no output folder. (`bench`'s
folders on an interrupt: tests/test_bench_input.py, in-process.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _interrupt(args: list[str], cwd: Path, signum: int, started, timeout: float = 240) -> tuple[int, str]:
    """Run `python ARGS` in `cwd` (its TMPDIR `cwd/tmp`), send `signum` once `started(stderr so far, cwd)` holds;
    return (exit code, stderr)."""
    (cwd / "tmp").mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(cwd / "tmp")}
    proc = subprocess.Popen([sys.executable, *args], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    assert proc.stderr is not None
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    try:
        while not started("".join(lines), cwd):
            assert proc.poll() is None, f"finished before the signal: {''.join(lines)}"
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.05)
        proc.send_signal(signum)
        proc.wait(timeout=120)
        reader.join(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, "".join(lines)


def _ours(folder: Path) -> list[str]:
    """What attndeploy left in a temp folder (torch's and onnxruntime's own caches are theirs)."""
    return [p.name for p in folder.iterdir() if p.name.startswith("attndeploy")]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_an_interrupted_selftest_leaves_nothing(signum, tmp_path):
    code, err = _interrupt(["-m", "attndeploy.selftest", "--names", "se,cbam", "--out", "out/deep/r.json"],
                           tmp_path, signum, lambda seen, _cwd: "[1/2] se" in seen)
    assert code == 128 + signum, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "interrupted", err
    assert _ours(tmp_path / "tmp") == [] and not (tmp_path / "out").exists()

"""Atomic writes: artifacts go to a temporary name in the target folder, then are renamed."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from attndeploy.errors import UsageError


def ensure_writable_dir(directory: Path) -> Path:
    """Create `directory` if needed; `UsageError` if it cannot be written."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".write-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise UsageError("the output directory must be writable", "a writable directory",
                         f"{directory} ({err.strerror or err})") from err
    return directory


def temp_path(final: Path) -> Path:
    """A unique hidden temporary path beside `final`."""
    fd, name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp")
    os.close(fd)
    return Path(name)


def write_bytes_atomic(final: Path, data: bytes) -> Path:
    tmp = temp_path(final)
    try:
        tmp.write_bytes(data)
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final


def write_json_atomic(final: Path, obj: object) -> Path:
    return write_bytes_atomic(final, (json.dumps(obj, indent=2) + "\n").encode())


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send everything written to stdout, by Python or by native code, to stderr.

    Exporters and onnxsim print progress on stdout; `--json` needs stdout for its one object.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)

"""Writing artifacts: output locations checked first, atomic writes, strict JSON, nothing left behind.

- `check_output_file(path)` / `ensure_writable_dir(dir)`: a location that cannot be written
  is a `UsageError` before any work; the probe leaves no file behind.
- `write_bytes_atomic` / `write_json_atomic`: data goes to `temp_path(final)` in the target
  folder, then is renamed over `final`.
- Temporary files are named ``.NAME.<pid>-<random>.tmp``: a run that was killed (SIGKILL)
  leaves one, and the next `temp_path` / `ensure_writable_dir` in that folder removes
  those whose writer process no longer exists (`remove_stale_temps`).
- This process remembers the folders `ensure_writable_dir` created and the temp files it
  made: the CLI removes the still-empty folders and its temp files when a run fails or is
  interrupted (`remove_created_dirs`, `remove_own_temps`).
- `removed_on_failure(folders)`: folders a block creates (and what it writes in them) are
  removed, whole, when the block fails or is interrupted (a bench's scratch output).
- `dumps_strict`: standard JSON (no ``NaN``/``Infinity`` tokens: non-finite floats become
  the strings ``"nan"``, ``"inf"``, ``"-inf"``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from attndeploy.errors import UsageError, require

_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-[A-Za-z0-9_]+\.tmp$")
_created_dirs: list[Path] = []
_own_temps: set[Path] = set()


def json_safe(obj: object) -> object:
    """`obj` with non-finite floats as ``"nan"``/``"inf"``/``"-inf"``, numpy scalars and arrays as Python values.

    Recurses through dicts, lists and tuples (tuples become lists); anything else is returned as is.
    """
    if isinstance(obj, float):
        if math.isfinite(obj):
            return obj
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if type(obj).__module__ == "numpy" and hasattr(obj, "tolist"):  # numpy scalar or array
        return json_safe(obj.tolist())
    return obj


def dumps_strict(obj: object, indent: int | None = 2) -> str:
    """Standard JSON for `obj` (see `json_safe`); a value JSON cannot hold raises TypeError/ValueError."""
    return json.dumps(json_safe(obj), indent=indent, allow_nan=False)


def _append_only(directory: Path) -> bool:
    """Whether `directory` (or a regular file) has Linux's append-only or immutable attribute: files in such a
    folder, or such a file itself, cannot be replaced."""
    try:
        import fcntl
        import struct

        request = 0x80086601 if struct.calcsize("l") == 8 else 0x80046601  # FS_IOC_GETFLAGS
        fd = os.open(directory, os.O_RDONLY)
        try:
            flags = struct.unpack("i", fcntl.ioctl(fd, request, bytes(8))[:4])[0]
        finally:
            os.close(fd)
    except (ImportError, OSError, AttributeError):  # not Linux, or a filesystem without attributes
        return False
    return bool(flags & 0x30)  # FS_APPEND_FL | FS_IMMUTABLE_FL


def _probe_writable(directory: Path) -> None:
    """OSError unless files can be created and replaced in `directory`; leaves nothing behind.

    The probe is an unnamed O_TMPFILE (where the filesystem has none: a named temp file,
    removed at once); an append-only directory is refused: an atomic write renames over its
    target.
    """
    if _append_only(directory):
        raise PermissionError(errno.EPERM, "append-only or immutable directory: files in it cannot be replaced",
                              str(directory))
    flag = getattr(os, "O_TMPFILE", 0)
    if flag:
        try:
            os.close(os.open(directory, flag | os.O_WRONLY, 0o600))
            return
        except OSError as err:
            if err.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):  # the filesystem lacks O_TMPFILE
                raise
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(directory))
    # os.access says yes to root everywhere (/proc, /sys): a named probe file, removed at once, says for sure
    fd, name = tempfile.mkstemp(dir=directory, prefix=".attndeploy-probe-")
    os.close(fd)
    os.unlink(name)


def _existing_ancestor(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def check_output_file(path: Path) -> None:
    """`UsageError` unless a file can be written at `path`; creates nothing.

    Refused: `path` exists and is a directory, not a regular file (a FIFO, a device) or an
    immutable or append-only file (an atomic write renames over it);
    its folder exists and cannot be written; its folder does not exist and cannot be
    created (a file is in the way, or the nearest existing folder cannot be written).
    """
    path = Path(path)
    if os.path.lexists(path):
        require(not path.is_dir(), "the output file must not be a directory", "a file path", f"{path} (a directory)")
        require(path.is_file(), "the output file must be a regular file", "a file path",
                f"{path} (not a regular file)")
        require(not _append_only(path), "the output file must be replaceable", "a file without the immutable or "
                "append-only attribute", f"{path} (immutable or append-only)", "lsattr shows it; chattr -i -a clears it")
    folder = Path(os.path.abspath(path.parent))
    ancestor = _existing_ancestor(folder)
    where = str(path.parent) if ancestor == folder else f"{path.parent} (at {ancestor})"
    require(ancestor.is_dir(), "the output directory must be writable", "a writable directory (or a path one "
            "can be made at)", f"{where}: not a directory")
    try:
        _probe_writable(ancestor)
    except OSError as err:
        raise UsageError("the output directory must be writable", "a writable directory",
                         f"{where}: {err.strerror or err}") from err


def ensure_writable_dir(directory: Path) -> Path:
    """Create `directory` if needed; `UsageError` if it cannot be written. Stale temp files in it are removed.

    Folders created here are remembered (`remove_created_dirs`).
    """
    directory = Path(directory)
    missing: list[Path] = []
    walk = Path(os.path.abspath(directory))
    while not os.path.lexists(walk) and walk != walk.parent:
        missing.append(walk)
        walk = walk.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _created_dirs.extend(d for d in reversed(missing) if d.is_dir() and d not in _created_dirs)
        _probe_writable(directory)
    except OSError as err:
        raise UsageError("the output directory must be writable", "a writable directory",
                         f"{directory} ({err.strerror or err})") from err
    remove_stale_temps(directory)
    return directory


def remove_created_dirs() -> list[Path]:
    """Remove the folders `ensure_writable_dir` created in this process that are still empty (deepest first)."""
    removed = []
    for d in reversed(_created_dirs):
        with contextlib.suppress(OSError):
            d.rmdir()
            removed.append(d)
    forget_created_dirs()
    return removed


def forget_created_dirs() -> None:
    """Stop tracking the folders created so far (a run that succeeded keeps them)."""
    _created_dirs.clear()


@contextlib.contextmanager
def removed_on_failure(folders: list[Path]) -> Iterator[None]:
    """During the block, `folders` may be created and written; if it raises (an error, SIGINT, SIGTERM), the
    topmost folder of each that did not exist before is removed with everything in it. Folders that existed are
    left as they are."""
    created = []
    for folder in folders:
        walk, top = Path(os.path.abspath(folder)), None
        while not os.path.lexists(walk) and walk != walk.parent:
            top, walk = walk, walk.parent
        if top is not None and top not in created:
            created.append(top)
    try:
        yield
    except BaseException:
        for top in created:
            shutil.rmtree(top, ignore_errors=True)
        raise


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # someone else's process (or unknowable): keep its file
    try:  # a killed process nobody has reaped yet is a zombie: it writes nothing more
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def remove_stale_temps(directory: Path) -> list[Path]:
    """Remove this user's ``.NAME.<pid>-<random>.tmp`` files in `directory` whose writer process is gone."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            continue
        with contextlib.suppress(OSError):
            if entry.stat(follow_symlinks=False).st_uid != os.geteuid() or _pid_alive(int(match["pid"])):
                continue
            os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


def temp_path(final: Path) -> Path:
    """A unique hidden temporary path beside `final` (``.NAME.<pid>-<random>.tmp``), created empty.

    Stale temp files of dead writers in that folder are removed first.
    """
    remove_stale_temps(final.parent)
    for old in [p for p in _own_temps if not p.exists()]:
        _own_temps.discard(old)
    fd, name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.{os.getpid()}-", suffix=".tmp")
    os.close(fd)
    _own_temps.add(Path(name))
    return Path(name)


def remove_own_temps() -> None:
    """Remove every temp file this process made with `temp_path` that still exists."""
    for path in list(_own_temps):
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
        _own_temps.discard(path)


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
        _own_temps.discard(tmp)
    return final


def write_json_atomic(final: Path, obj: object) -> Path:
    """`obj` as standard JSON (`dumps_strict`), written atomically."""
    return write_bytes_atomic(final, (dumps_strict(obj) + "\n").encode())


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

"""What the CLI writes: results on stdout (one JSON object with --json), everything else on stderr.

While a command runs (`reserve_stdout`), file descriptor 1 and `sys.stdout` point to
stderr, so a `print` in user code, a library's progress or native code's output cannot
corrupt the results; only `emit` (human tables) and `print_json` (the one JSON object)
write to the real stdout. Outside `reserve_stdout` both write to `sys.stdout`.

A leaf module: every command imports it, it imports none of them.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import TextIO

from attndeploy.fileio import dumps_strict

_results: TextIO | None = None  # the real stdout while `reserve_stdout` is active
_json_emitted = False


def stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def emit(text: str) -> None:
    """Write `text` and a newline to the real stdout (a result: a table, a summary line)."""
    stream = _results if _results is not None else sys.stdout
    stream.write(text + "\n")
    stream.flush()


def print_json(obj: object) -> None:
    """Write `obj` to the real stdout as standard JSON (non-finite floats as "nan"/"inf"/"-inf")."""
    global _json_emitted
    emit(dumps_strict(obj))
    _json_emitted = True


def json_emitted() -> bool:
    """Whether `print_json` ran inside the current `reserve_stdout` block."""
    return _json_emitted


@contextlib.contextmanager
def results_as_stdout() -> Iterator[None]:
    """During the block `sys.stdout` is the real stdout (for code that prints results itself: argparse's help)."""
    saved = sys.stdout
    sys.stdout = _results if _results is not None else saved
    try:
        yield
    finally:
        sys.stdout = saved


def _fileno(stream: object) -> int | None:
    try:
        return stream.fileno()  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return None


@contextlib.contextmanager
def reserve_stdout() -> Iterator[None]:
    """Keep stdout for `emit`/`print_json` during the block: fd 1 and `sys.stdout` go to stderr meanwhile."""
    global _results, _json_emitted
    real = sys.stdout
    with contextlib.suppress(Exception):
        real.flush()
    saved = None
    results: TextIO = real
    try:
        saved = os.dup(1)
        if _fileno(real) == 1:
            results = os.fdopen(saved, "w", encoding=getattr(real, "encoding", None) or "utf-8", closefd=False)
        os.dup2(2, 1)
    except OSError:  # no fd 1 or 2 (a daemon): Python-level redirection only
        pass
    previous = _results, _json_emitted
    _results, _json_emitted = results, False
    sys.stdout = sys.stderr
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        sys.stdout = real
        _results, _json_emitted = previous
        if results is not real:
            with contextlib.suppress(Exception):
                results.flush()
                results.close()
        if saved is not None:
            with contextlib.suppress(OSError):
                os.dup2(saved, 1)
            os.close(saved)

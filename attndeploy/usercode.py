"""Calling code attndeploy does not own (a model file's import, a factory, a forward) without losing control.

    with calling_user_code(f"the model file {path}"):
        spec.loader.exec_module(module)

User code may end the process: `sys.exit(0)` at import, a research script whose argparse
parses *our* `sys.argv` at import and exits with its usage, `raise KeyboardInterrupt`.
Inside `calling_user_code(what)`:

- `SystemExit` (whatever its code) becomes `UsageError` naming `what` and the exit code;
- a `KeyboardInterrupt` the user's code raised itself becomes `UsageError` too;
- a real interrupt stays an interrupt: `Interrupted` (the CLI's SIGINT/SIGTERM handlers
  raise it) and any `KeyboardInterrupt` raised while a signal was noted (`note_signal`)
  pass through unchanged. Where no noting handler is installed (the Python API called
  from a script), the block installs one for its duration in the main thread; where
  another handler is installed (or off the main thread) a `KeyboardInterrupt` is never
  converted, since it cannot be told apart from Ctrl-C;
- everything else (`Exception`s) passes through unchanged: callers keep their own
  messages for ordinary errors.

With `hold_output=True` (imports and factories: where a script's argparse runs), what the
block writes to `sys.stdout` / `sys.stderr` is held and written out when it ends, unless it
ends in `SystemExit`: then the held text is dropped and its last line goes into the one-line
`UsageError` (argparse's `error: the following arguments are required: --lr`), so the exit
is one line. More than `HELD_LIMIT` characters are written out as they come.

`what` is a noun phrase the messages start with: "the model file 'net.py' (on import)",
"the factory 'net.py:build'", "the forward of 'net'" (``<what> tried to exit the
process: expected ..., got SystemExit(2)``). Blocks nest. The loaders, `lint` and the
export pipeline (every call of the model's forward) use it.
"""

from __future__ import annotations

import contextlib
import io
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any, TextIO

from attndeploy.errors import UsageError

_noted = 0  # signals noted by a noting handler in this process
HELD_LIMIT = 1 << 16  # characters of user output held before it is written out as it comes


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM reached the process (`signum`); a `KeyboardInterrupt`, so `except Exception` lets it by."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def note_signal(signum: int) -> None:
    """Record that a real signal arrived; a signal handler calls it before raising."""
    global _noted
    _noted += 1


def noting(handler: Any) -> Any:
    """Mark `handler` as one that calls `note_signal` (so `calling_user_code` trusts it)."""
    handler._attndeploy_notes_signals = True
    return handler


@noting
def _raise_interrupt(signum: int, frame: Any) -> None:
    note_signal(signum)
    raise KeyboardInterrupt


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def _watching_sigint() -> Iterator[bool]:
    """Yield whether SIGINT is watched by a noting handler during the block (installing one if it can)."""
    if not _in_main_thread():
        yield False
        return
    current = signal.getsignal(signal.SIGINT)
    if getattr(current, "_attndeploy_notes_signals", False):
        yield True
        return
    if current is not signal.default_int_handler:
        yield False
        return
    signal.signal(signal.SIGINT, _raise_interrupt)
    try:
        yield True
    finally:
        signal.signal(signal.SIGINT, current)


class _HeldStream(io.TextIOBase):
    """`sys.stdout` or `sys.stderr` during a held block: writes go to the shared `_Held` record, in order."""

    def __init__(self, held: _Held, real: TextIO) -> None:
        super().__init__()
        self._held, self._real = held, real

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._real, "encoding", None) or "utf-8"

    def write(self, text: str) -> int:
        self._held.write(self._real, text)
        return len(text)

    def fileno(self) -> int:  # native code writes to the real descriptor
        return self._real.fileno()

    def isatty(self) -> bool:
        return False


class _Held:
    """What user code wrote, in order, per real stream; past `HELD_LIMIT` characters everything passes through."""

    def __init__(self) -> None:
        self.parts: list[tuple[TextIO, str]] = []
        self.size, self.passing, self.tail = 0, False, ""

    def write(self, real: TextIO, text: str) -> None:
        self.tail = (self.tail + text)[-4096:]
        if self.passing:
            real.write(text)
            return
        self.parts.append((real, text))
        self.size += len(text)
        if self.size > HELD_LIMIT:
            self.release()
            self.passing = True

    def release(self) -> None:
        for real, text in self.parts:
            with contextlib.suppress(Exception):
                real.write(text)
                real.flush()
        self.parts.clear()

    def last_line(self) -> str:
        lines = [line.strip() for line in self.tail.splitlines() if line.strip()]
        return lines[-1][:300] if lines else ""


@contextlib.contextmanager
def _holding(enabled: bool) -> Iterator[_Held | None]:
    if not enabled:
        yield None
        return
    held = _Held()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _HeldStream(held, saved[0]), _HeldStream(held, saved[1])
    try:
        yield held
    finally:
        sys.stdout, sys.stderr = saved
        held.release()  # nothing is left when the block ended in SystemExit (its text went into the error)


@contextlib.contextmanager
def calling_user_code(what: str, hold_output: bool = False) -> Iterator[None]:
    """Run the block as user code named `what` (e.g. "the model file 'net.py' (import)"); see the module docstring.

    Raises `UsageError` for `SystemExit` and for a `KeyboardInterrupt` the user's code
    raised; re-raises real interrupts and every `Exception` unchanged.
    """
    before = _noted
    with _watching_sigint() as watched, _holding(hold_output) as held:
        try:
            yield
        except Interrupted:
            raise
        except SystemExit as err:
            printed = held.last_line() if held is not None else ""
            if held is not None:
                held.parts.clear()
            raise UsageError(f"{what} tried to exit the process", "code that returns (or raises an error) "
                             "instead of calling sys.exit", f"SystemExit({err.code!r})"
                             + (f" after printing {printed!r}" if printed else ""),
                             "a script that parses sys.argv or runs its main at import? guard it with "
                             "`if __name__ == '__main__':`") from err
        except KeyboardInterrupt as err:
            if not watched or _noted != before:
                raise
            raise UsageError(f"{what} raised KeyboardInterrupt", "code that returns (or raises an error)",
                             "KeyboardInterrupt raised by the code itself, not a Ctrl-C") from err

"""Keep native chatter (onnxsim's "Checking 0/3...", kineto's profiler lines) off the terminal.

Progress bars own stderr while `bench`, `matrix` and the zoo export run; everything the
libraries print on file descriptors 1 and 2 inside `quiet()` goes to a temporary file
instead, and is handed back so that a failure can still show it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator


class Captured:
    """What was written while quiet (filled in when the block exits)."""

    text: str = ""

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.text.strip().splitlines()[-lines:])


@contextlib.contextmanager
def quiet(enabled: bool = True) -> Iterator[Captured]:
    """Redirect fds 1 and 2 (and `sys.stdout` / `sys.stderr`) to a temp file for the block."""
    captured = Captured()
    if not enabled:
        yield captured
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            with open(os.dup(sink.fileno()), "w", closefd=True) as text, \
                    contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
                try:
                    yield captured
                finally:
                    text.flush()
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            captured.text = sink.read().decode(errors="replace")

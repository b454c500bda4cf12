"""`Run`: one pipeline run's settings, progress log, notes and stage timings (what every stage may touch)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from attndeploy.errors import CheckFailed, UsageError, first_line
from attndeploy.settings import ExportSettings

Log = Callable[[str], None]


@dataclass
class Run:
    settings: ExportSettings
    log: Log
    name: str = ""
    notes: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def note(self, text: str) -> None:
        """A note a user should read (the table prints it; report.json's `notes`), also logged."""
        self.notes.append(text)
        self.log(f"note: {text}")

    def detail(self, text: str) -> None:
        """A detail for report.json's `details` only (what a stage chose that changes nothing of the verdict)."""
        self.details.append(text)
        self.log(text)

    @contextlib.contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Add the block's wall time to `seconds[name]`."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """`timed(name)`; a raw error from torch, onnx or onnxruntime becomes one `CheckFailed` line naming the stage
        (`UsageError` and `CheckFailed` pass as they are)."""
        with self.timed(name):
            try:
                yield
            except (UsageError, CheckFailed):
                raise
            except Exception as err:
                where = f" on {self.name}" if self.name else ""
                raise CheckFailed(f"the {name} stage failed{where}: {first_line(err, with_type=True)}") from err


__all__ = ["Log", "Run"]

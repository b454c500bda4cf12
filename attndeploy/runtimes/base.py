"""One small interface over every backend: `activate / infer / close`, usable as a context manager.

    with OnnxRuntimeRunner("models/cbam/cbam.onnx") as runner:
        outputs = runner.infer({"input": x})      # x: (N, C, H, W) float32 -> {"output": (N, C, H, W)}

A subclass sets `name`, fills `specs` in `_activate` and computes in `_infer`; feeds are
checked once, here, against `specs` (names, dtypes, ranks, static dims, profiles) before
`_infer` sees them, so every backend refuses the same bad input with the same message.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, TypeVar

import numpy as np

from attndeploy.runtimes.feeds import IOSpec, validate_feeds

_RunnerT = TypeVar("_RunnerT", bound="Runner")  # `typing.Self` is Python >= 3.11; the device runs 3.10


class Runner(ABC):
    """A backend that runs one model. `infer({input name: array}) -> {output name: array}`."""

    name: str = "runner"

    def __init__(self) -> None:
        self.specs: list[IOSpec] = []
        self._active = False

    @abstractmethod
    def _activate(self) -> None:
        """Load the model and fill `self.specs` (inputs and outputs, in model order)."""

    @abstractmethod
    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run on checked, contiguous feeds; outputs by name, in `output_names` order."""

    def _close(self) -> None:
        """Release what `_activate` loaded."""

    def activate(self: _RunnerT) -> _RunnerT:
        self._activate()
        self._active = True
        return self

    def infer(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        if not self._active:
            raise RuntimeError(f"{type(self).__name__} used before activate() (use it as a context manager)")
        return self._infer(validate_feeds(feeds, self.specs))

    def bound(self, feeds: Mapping[str, Any]) -> Callable[[], object]:
        """`feeds` checked once, now; returns a zero-argument call that runs them (what a benchmark times).

        The call returns what the backend hands back (`_infer`'s outputs unless a subclass's
        `_bind` stages the feeds on its device once and returns the bare call).
        """
        if not self._active:
            raise RuntimeError(f"{type(self).__name__} used before activate() (use it as a context manager)")
        return self._bind(validate_feeds(feeds, self.specs))

    def _bind(self, feeds: dict[str, np.ndarray]) -> Callable[[], object]:
        """A zero-argument call on checked `feeds`; override to stage them on a device once."""
        return lambda: self._infer(feeds)

    def close(self) -> None:
        if self._active:
            self._close()
        self._active = False

    @property
    def input_names(self) -> list[str]:
        return [s.name for s in self.specs if s.is_input]

    @property
    def output_names(self) -> list[str]:
        return [s.name for s in self.specs if not s.is_input]

    def __enter__(self: _RunnerT) -> _RunnerT:
        return self.activate()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

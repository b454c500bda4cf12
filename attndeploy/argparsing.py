"""argparse with our error messages: converters keep them, and a usage error is a one-line `UsageError`.

Used by the CLI and by anything else that parses argument lists (the README's matrix marker)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

from attndeploy.errors import UsageError

T = TypeVar("T")


def argument_type(convert: Callable[[str], T]) -> Callable[[str], T]:
    """argparse turns a converter's ValueError into "invalid value"; keep our message instead."""

    def wrapped(text: str) -> T:
        try:
            return convert(text)
        except UsageError as err:
            raise argparse.ArgumentTypeError(str(err)) from err

    wrapped.__name__ = convert.__name__
    return wrapped


class UsageErrorParser(argparse.ArgumentParser):
    """argparse, but usage errors are `UsageError` (one line, exit 2) rather than a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # One line: argparse's message names the argument; our converters' messages carry rule/expected/actual.
        raise UsageError(f"{self.prog}: {message}", hint=f"see {self.prog} --help")

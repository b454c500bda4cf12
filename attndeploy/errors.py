"""Errors that reach users: each names the rule, the expected and the actual value.

`UsageError` means bad usage or input (CLI exit 2); `CheckFailed` means a check on a
produced artifact did not pass (parity, lint: CLI exit 1).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UsageError(ValueError):
    """Bad usage or input. The message reads ``<rule>: expected <expected>, got <actual>``."""

    def __init__(self, rule: str, expected: object = None, actual: object = None, hint: str = "") -> None:
        self.rule, self.expected, self.actual, self.hint = rule, expected, actual, hint
        message = rule
        if expected is not None or actual is not None:
            message += f": expected {expected}, got {actual}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)


class CheckFailed(RuntimeError):
    """A verification of a produced artifact failed (parity, lint)."""


def require(condition: bool, rule: str, expected: object, actual: object, hint: str = "") -> None:
    """Raise `UsageError(rule, expected, actual)` unless `condition` holds."""
    if not condition:
        raise UsageError(rule, expected, actual, hint)


def require_divisible(name: str, value: int, divisor: int, divisor_name: str) -> None:
    """E.g. ``channels must be divisible by reduction=16: expected a multiple of 16, got 40``."""
    require(
        value % divisor == 0,
        f"{name} must be divisible by {divisor_name}={divisor}",
        f"a multiple of {divisor}",
        value,
    )


def unknown_name(kind: str, name: object, valid: Iterable[str]) -> UsageError:
    """An error for an unknown name that lists the valid ones and suggests the closest.

    `name` may be anything a caller passed (``None``, a number): only a string gets a suggestion.
    """
    choices = sorted(str(v) for v in valid)
    close = difflib.get_close_matches(name, choices, n=1) if isinstance(name, str) else []
    hint = f"did you mean {close[0]!r}?" if close else ""
    return UsageError(f"unknown {kind} {name!r}", "one of " + ", ".join(choices), repr(name), hint)


def first_line(err: BaseException, limit: int = 300, with_type: bool = False) -> str:
    """The first line of `err`'s message (its type name when the message is empty), at most `limit` chars.

    `with_type` prefixes the type name: ``ModuleNotFoundError: No module named 'x'``.
    """
    text = str(err).strip()
    if not text:
        return type(err).__name__
    line = text.splitlines()[0][:limit]
    return f"{type(err).__name__}: {line}" if with_type else line

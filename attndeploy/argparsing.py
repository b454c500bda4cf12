"""argparse with our error messages: converters keep them, and every usage error is a one-line `UsageError`
naming the rule, the expected and the actual value (argparse's own wording has no expected/got).

Used by the CLI, `python -m attndeploy.selftest` and anything else that parses argument lists
(the README's matrix marker). The text converters (`parse_int`, `parse_float`, ...) take
`(text, flag)` so their message names the flag.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from attndeploy.errors import UsageError
from attndeploy.limits import check_model_arguments

T = TypeVar("T")
MAX_INT_DIGITS = 4000  # below Python's str -> int limit; each option's range check says its range


def argument_type(convert: Callable[[str], T]) -> Callable[[str], T]:
    """argparse turns a converter's ValueError into "invalid value"; keep our message instead."""

    def wrapped(text: str) -> T:
        try:
            return convert(text)
        except UsageError as err:
            raise argparse.ArgumentTypeError(str(err)) from err

    wrapped.__name__ = convert.__name__
    return wrapped


def parse_text(text: str, flag: str) -> str:
    return text


def parse_int(text: str, flag: str) -> int:
    """`"8"` -> 8; anything but an optionally signed decimal integer is refused naming `flag`."""
    value = text.strip()
    digits = value[1:] if value[:1] in "+-" else value
    if not (digits.isascii() and digits.isdigit() and len(digits) <= MAX_INT_DIGITS):
        raise UsageError(f"{flag} must be an integer", "an integer, e.g. 8", repr(text))
    return int(value)


def parse_float(text: str, flag: str) -> float:
    """`"1e-4"` -> 0.0001; a non-number is refused naming `flag` (range and finiteness: the option's check)."""
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"{flag} must be a number", "a number, e.g. 0.99 or 1e-4", repr(text)) from None


def parse_path(text: str, flag: str) -> Path:
    if not text.strip():
        raise UsageError(f"{flag} must be a path", "a file or folder path", repr(text))
    return Path(text)


class _NotJSON(float):
    """NaN/Infinity/-Infinity as Python's json reads them (they are not JSON); the repr says so in errors."""

    token: str

    def __new__(cls, token: str) -> _NotJSON:
        value = super().__new__(cls, token)
        value.token = token
        return value

    def __repr__(self) -> str:
        return f"{self.token} (not JSON)"


def parse_kwargs(text: str, flag: str = "--kwargs") -> dict[str, Any]:
    """Strict JSON object (no NaN/Infinity), every number finite and every int within +-2**31-1."""
    try:
        value = json.loads(text, parse_constant=_NotJSON)
    except json.JSONDecodeError as err:
        raise UsageError(f"{flag} must be a JSON object", 'e.g. {"channels": 32}', f"{text!r} ({err.msg})") from err
    except ValueError as err:  # an integer too long to parse
        raise UsageError(f"{flag} must be standard JSON", 'e.g. {"channels": 32}', f"{text!r} ({err})") from err
    if not isinstance(value, dict):
        raise UsageError(f"{flag} must be a JSON object", 'e.g. {"channels": 32}', repr(text))
    check_model_arguments(value)
    return value


def _options_of(parser: argparse.ArgumentParser) -> list[str]:
    return sorted(s for a in parser._actions for s in a.option_strings
                  if s.startswith("--") and a.help != argparse.SUPPRESS)


def _closest(word: str, choices: str) -> str:
    """"did you mean ...?" for `word` (as argparse quotes it) among `choices` ("'a', 'b'")."""
    valid = [c.strip().strip("'\"") for c in choices.split(",")]
    close = difflib.get_close_matches(word.strip("'\""), valid, n=1)
    return f"did you mean {close[0]!r}?" if close else ""


# argparse's own messages (Python 3.10-3.13) -> (rule, expected, actual[, hint])
_ARGPARSE_MESSAGES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], tuple[str, ...]]], ...] = (
    (re.compile(r"argument (\S+): invalid (\w+) value: (.*)"),
     lambda m: (f"{m[1]} must be {'an integer' if m[2] == 'int' else 'a number' if m[2] == 'float' else 'valid'}",
                f"a value of type {m[2]}", m[3])),
    (re.compile(r"argument (\S+): expected (.*) arguments?"),
     lambda m: (f"{m[1]} takes a value", f"{m[2]} value after {m[1]}", "none")),
    (re.compile(r"argument (\S+): invalid choice: (\S+) \(choose from (.*)\)"),
     lambda m: (f"{m[1]} must be one of its choices", m[3], m[2], _closest(m[2], m[3]))),
    (re.compile(r"the following arguments are required: (.*)"), lambda m: ("missing arguments", m[1], "none")),
    (re.compile(r"ambiguous option: (\S+) could match (.*)"),
     lambda m: (f"{m[1]} abbreviates more than one option", f"one of {m[2]}", m[1])),
    (re.compile(r"argument (\S+): ignored explicit argument (.*)"),
     lambda m: (f"{m[1]} takes no value", m[1], f"{m[1]}={m[2].strip(chr(39))}")),
    (re.compile(r"argument (\S+): not allowed with argument (\S+)"),
     lambda m: (f"{m[1]} and {m[2]} cannot be given together", f"{m[1]} or {m[2]}", "both")),
)


class UsageErrorParser(argparse.ArgumentParser):
    """argparse, but usage errors are `UsageError` (one line, exit 2, expected and got) rather than a usage dump."""

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            self.unrecognized(extras, parsed)
        return parsed

    def unrecognized(self, extras: list[str], parsed: Any) -> NoReturn:
        """Words no option takes: name the command's options and the closest one."""
        parser: argparse.ArgumentParser = self
        command = getattr(parsed, "command", None)
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction) and command in action.choices:
                parser = action.choices[command]
        valid = _options_of(parser)
        first = extras[0].split("=", 1)[0]
        close = difflib.get_close_matches(first, valid, n=1) if first.startswith("-") else []
        hint = f"did you mean {close[0]!r}?" if close else f"see {parser.prog} --help"
        expected = ("one of its options: " + ", ".join(valid)) if first.startswith("-") else "no further arguments"
        raise UsageError(f"{parser.prog}: unrecognized arguments: {' '.join(extras)}", expected, repr(first), hint)

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        for pattern, explain in _ARGPARSE_MESSAGES:
            match = pattern.fullmatch(message)
            if match:
                rule, expected, actual, *hint = explain(match)
                raise UsageError(f"{self.prog}: {rule}", expected, actual,
                                 next((h for h in hint if h), f"see {self.prog} --help"))
        # our converters' messages already carry rule/expected/actual ("argument --x: <rule>: expected ..., got ...")
        raise UsageError(f"{self.prog}: {message}", hint=f"see {self.prog} --help")


__all__ = ["UsageErrorParser", "argument_type", "parse_float", "parse_int", "parse_kwargs", "parse_path",
           "parse_text"]

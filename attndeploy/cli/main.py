"""`attndeploy list|export|lint|run|bench|matrix|verify`: argument parsing and exit codes; the work lives in the library.

Exit 0: every check passed; 1: a check failed; 2: bad usage or input (one stderr line
``error: <rule>: expected <x>, got <y>``); 130 / 143: interrupted by SIGINT / SIGTERM
(one stderr line ``interrupted``). With ``--json`` stdout carries exactly one JSON object
for exit 0, 1 and 2 (errors: ``{"error", "rule", "expected", "actual", "hint"}``). A run
that fails or is interrupted leaves no temp files and no empty folders it created.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from attndeploy import fileio
from attndeploy.argparsing import UsageErrorParser
from attndeploy.cli import output
from attndeploy.errors import CheckFailed, UsageError
from attndeploy.usercode import Interrupted, note_signal, noting

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE = 0, 1, 2
HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


# Each command: the module that declares its parser (`add_parser`) and runs it, and its line in `--help`.
# Only the module of the command being run is imported, so `run`, `lint MODEL.onnx` and `--help` start
# without torch (the device install has none); tests/test_device_imports.py keeps the help lines in step.
COMMANDS: dict[str, tuple[str, str]] = {
    "list": ("attndeploy.cli.list_cmd", "list the registry's modules"),
    "export": ("attndeploy.cli.export_cmd", "export a module or model to ONNX and check it against eager PyTorch"),
    "lint": ("attndeploy.cli.lint_cmd", "TensorRT-readiness of an ONNX file, or export hazards of a PyTorch model"),
    "run": ("attndeploy.cli.run_cmd", "run an ONNX model or TensorRT engine and time it"),
    "bench": ("attndeploy.cli.bench_cmd", "time eager PyTorch against the exported graphs, interleaved"),
    "matrix": ("attndeploy.cli.matrix_cmd", "export every module x opset x exporter x static/dynamic: pass/fail"),
    "power": ("attndeploy.cli.power_cmd", "the smallest bug planted in the graph that the verdict catches"),
    "verify": ("attndeploy.cli.verify_cmd", "check a bundle's graph or TensorRT engine against the eager truth it "
               "carries (no torch needed)"),
}

# Packages only an extra brings: a command run without one says which extra to install (exit 2).
EXTRA_OF = {"torch": "export", "torchvision": "export", "onnxscript": "export", "onnxsim": "export", "tqdm": "export",
            "PIL": "export", "tomli": "export", "onnxruntime": "ort", "ultralytics": "ultralytics",
            "matplotlib": "plot"}


def missing_extra(err: ModuleNotFoundError) -> UsageError | None:
    """The `UsageError` naming the extra that brings `err`'s module; None for a module no extra brings."""
    top = (err.name or "").split(".")[0]
    extra = EXTRA_OF.get(top)
    if extra is None:
        return None
    return UsageError(f"this command needs {top}, which the core install (the device side) does not bring",
                      f"pip install 'attndeploy[{extra}]'", f"no module named {top!r}")


def chosen_command(argv: Sequence[str]) -> str | None:
    """The command `argv` names (its first word, the top-level parser taking only -h), or None."""
    first = next((w for w in argv if not w.startswith("-")), None)
    return first if first in COMMANDS else None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The CLI's parser: `command`'s full sub-parser (its module imported), every other command by name and help only.

    `command=None` imports no command module (enough for `--help` and an unknown command's error).
    """
    parser = UsageErrorParser(prog="attndeploy", description="Export attention modules to ONNX/TensorRT, with parity evidence.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=UsageErrorParser)
    for name, (module, help_line) in COMMANDS.items():
        if name == command:
            importlib.import_module(module).add_parser(commands)
        else:
            commands.add_parser(name, help=help_line)
    return parser


def wants_json(argv: Sequence[str]) -> bool:
    """Whether `argv` asks for `--json` (argparse's abbreviations too), found even when parsing fails."""
    words = list(argv)
    words = words[:words.index("--")] if "--" in words else words
    return any(w.startswith("--j") and "--json".startswith(w) for w in words)


class _SignalGate:
    """SIGINT/SIGTERM raise `Interrupted` while the command runs (armed); after `disarm` (cleanup) they are recorded.

    Every signal is noted (`attndeploy.usercode.note_signal`), so user code's own
    `raise KeyboardInterrupt` is told apart from a real one.
    """

    def __init__(self) -> None:
        self.armed, self.received = True, 0

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.getsignal(s) for s in HANDLED_SIGNALS}
        for s in HANDLED_SIGNALS:
            signal.signal(s, self._handle)
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    @noting
    def _handle(self, signum: int, frame: Any) -> None:
        note_signal(signum)
        self.received = self.received or signum
        if self.armed:
            raise Interrupted(signum)

    def disarm(self) -> None:
        self.armed = False


def _plain(value: object) -> object:
    """`value` if JSON holds it as is, else its text."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float, bool)) for v in value):
        return list(value)
    return str(value)


def _origin(err: UsageError) -> UsageError:
    """The `UsageError` that carries rule/expected/actual: argparse re-raises a converter's as its own message."""
    cause: BaseException | None = err
    for _ in range(8):
        if isinstance(cause, UsageError) and (cause.expected is not None or cause.actual is not None):
            return cause
        if cause is None:
            break
        cause = cause.__cause__ or cause.__context__
    return err


def _report_usage(err: UsageError, as_json: bool) -> int:
    if as_json and not output.json_emitted():
        origin = _origin(err)
        output.print_json({"error": str(err), "rule": origin.rule, "expected": _plain(origin.expected),
                           "actual": _plain(origin.actual), "hint": origin.hint or err.hint or None})
    output.stderr(f"error: {err}")
    return EXIT_USAGE


def _report_check(err: CheckFailed, as_json: bool) -> int:
    if as_json and not output.json_emitted():
        output.print_json({"error": str(err), "rule": "check failed", "passed": False})
    output.stderr(f"check failed: {err}")
    return EXIT_CHECK_FAILED


def _report_interrupt(signum: int, as_json: bool) -> int:
    name = signal.Signals(signum).name
    if as_json and not output.json_emitted():
        output.print_json({"error": "interrupted", "signal": name})
    output.stderr("interrupted")
    return 128 + signum


def parse_and_run(parser: argparse.ArgumentParser, argv: Sequence[str]) -> int:
    """`parser`'s arguments, then their `run(args)`; `--help` (printed as a result on stdout) returns its exit code."""
    with output.results_as_stdout():  # --help is a result
        try:
            args = parser.parse_args(list(argv))
        except SystemExit as done:  # --help
            return done.code if isinstance(done.code, int) else EXIT_USAGE
    return int(args.run(args))


def _report_error(err: Exception, as_json: bool) -> int:
    """Exit 2 for bad usage (a missing extra too), 1 for a failed check; anything else is raised again."""
    if isinstance(err, UsageError):
        return _report_usage(err, as_json)
    if isinstance(err, ModuleNotFoundError):
        missing = missing_extra(err)
        if missing is not None:
            return _report_usage(missing, as_json)
    if isinstance(err, CheckFailed):
        return _report_check(err, as_json)
    raise err


def _outcome(body: Callable[[], int], gate: _SignalGate, as_json: bool) -> int:
    """`body()`'s exit code, or the code of what it raised (one stderr line; with `as_json` one JSON object)."""
    try:
        try:
            return body()
        finally:
            gate.disarm()
    except Exception as err:
        if gate.received:  # the signal's exception became another on its way up (onnxruntime's import: ImportError)
            return _report_interrupt(gate.received, as_json)
        return _report_error(err, as_json)
    except Interrupted as err:
        return _report_interrupt(err.signum, as_json)
    except KeyboardInterrupt:  # Ctrl-C where our handler is not installed (main() off the main thread)
        return _report_interrupt(signal.SIGINT, as_json)


def run_guarded(body: Callable[[], int], as_json: bool = False) -> int:
    """Run `body` (a command) under the CLI's contract (see the module docstring) and return its exit code.

    SIGINT/SIGTERM interrupt it (130/143, one `interrupted` line); `UsageError` is exit 2 and
    `CheckFailed` exit 1, each one stderr line; stdout is reserved for results (`output.emit`,
    `output.print_json`); temp files, and the folders a failed run created, are removed.
    """
    gate = _SignalGate()
    with gate.installed(), output.reserve_stdout():
        code = EXIT_USAGE
        try:
            code = _outcome(body, gate, as_json)
        finally:
            fileio.remove_own_temps()
            if code != EXIT_OK or gate.received:
                fileio.remove_created_dirs()
            fileio.forget_created_dirs()
        if gate.received and code not in (128 + signal.SIGINT, 128 + signal.SIGTERM):
            code = _report_interrupt(gate.received, as_json)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI on `argv` (default `sys.argv[1:]`) and return the exit code."""
    words = list(sys.argv[1:] if argv is None else argv)
    return run_guarded(lambda: parse_and_run(build_parser(chosen_command(words)), words), wants_json(words))


if __name__ == "__main__":
    sys.exit(main())

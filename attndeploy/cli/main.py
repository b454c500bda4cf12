"""`attndeploy list|export`: argument parsing and exit codes; the work lives in the library."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from attndeploy.argparsing import UsageErrorParser
from attndeploy.cli.output import stderr
from attndeploy.errors import CheckFailed, UsageError

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    from attndeploy.cli import (
        bench_cmd,
        export_cmd,
        lint_cmd,
        list_cmd,
        matrix_cmd,
        run_cmd,
    )

    parser = UsageErrorParser(prog="attndeploy", description="Export attention modules to ONNX/TensorRT, with parity evidence.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=UsageErrorParser)
    list_cmd.add_parser(commands)
    export_cmd.add_parser(commands)
    lint_cmd.add_parser(commands)
    run_cmd.add_parser(commands)
    bench_cmd.add_parser(commands)
    matrix_cmd.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.run(args))
    except UsageError as err:
        stderr(f"error: {err}")
        return EXIT_USAGE
    except CheckFailed as err:
        stderr(f"check failed: {err}")
        return EXIT_CHECK_FAILED


if __name__ == "__main__":
    sys.exit(main())

"""`attndeploy matrix [NAMES...] [--opsets ...] [--exporters ...] [--axes ...] [--trt ...] [--jobs N] [--json|--md]`.

Every registry module x opset x exporter x static/dynamic as an independent export:
pass, or fail with a short reason, plus TensorRT lint columns. `--readme FILE` takes
the grid from FILE's `<!-- matrix:start ARGS -->` marker and rewrites the table between
the markers (`--check`: only compare, exit 1 when it differs). Exit 0 unless `--strict`
and a cell failed (1), or `--check` found a stale table (1); bad usage 2.
"""

from __future__ import annotations

import argparse
import difflib
import time
from pathlib import Path

from attndeploy.cli.output import emit, print_json, stderr
from attndeploy.errors import UsageError, require
from attndeploy.fileio import write_bytes_atomic
from attndeploy.matrix import parse_grid, run_matrix, to_json, to_markdown, to_text
from attndeploy.matrix.grid import add_grid_arguments, grid_from_args, grid_given
from attndeploy.matrix.readme import read_readme, replace_block


def add_parser(commands: argparse._SubParsersAction) -> None:

    p = commands.add_parser("matrix", help="export every module x opset x exporter x static/dynamic: pass/fail")
    add_grid_arguments(p)
    p.add_argument("--jobs", type=int, default=1, help="export in N processes (default 1)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="one JSON object with every cell on stdout")
    fmt.add_argument("--md", action="store_true", help="the compact Markdown table (the README's support table)")
    p.add_argument("--readme", type=Path, default=None, metavar="FILE",
                   help="regenerate the table between FILE's matrix markers, with the grid the start marker records")
    p.add_argument("--check", action="store_true", help="with --readme: compare only; exit 1 when the table differs")
    p.add_argument("--strict", action="store_true", help="exit 1 when any cell failed")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights and parity inputs")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar on stderr")
    p.set_defaults(run=run)


def _run_readme(args: argparse.Namespace) -> int:

    text, block = read_readme(args.readme)
    grid = parse_grid(block.args)
    fresh = to_markdown(grid, run_matrix(grid, args.jobs, args.progress, args.seed))
    if fresh == block.body:
        stderr(f"{args.readme}: the matrix table is up to date")
        return 0
    if args.check:
        diff = difflib.unified_diff(block.body.splitlines(), fresh.splitlines(), "README (current)",
                                    "attndeploy matrix (now)", lineterm="")
        stderr("\n".join(diff))
        stderr(f"{args.readme}: the matrix table differs from what `attndeploy matrix` produces now")
        return 1
    write_bytes_atomic(args.readme, replace_block(text, fresh, str(args.readme)).encode("utf-8"))
    stderr(f"{args.readme}: matrix table rewritten")
    return 0


def run(args: argparse.Namespace) -> int:

    require(args.jobs >= 1, "--jobs must be a positive integer", ">= 1", args.jobs)
    if args.readme is not None:
        if grid_given(args):
            raise UsageError("--readme takes the grid from the README's start marker", "no NAMES, --opsets, "
                             "--exporters, --axes or --trt with --readme", "grid arguments on the command line")
        return _run_readme(args)
    require(not args.check, "--check compares a README's table", "--check together with --readme FILE", "--check alone")

    grid = grid_from_args(args)
    start = time.perf_counter()
    results = run_matrix(grid, args.jobs, args.progress, args.seed)
    if args.json:
        print_json(to_json(grid, results, time.perf_counter() - start))
    elif args.md:
        emit(to_markdown(grid, results).rstrip("\n"))
    else:
        emit(to_text(grid, results))
    return 1 if args.strict and any(r.status == "fail" for r in results) else 0

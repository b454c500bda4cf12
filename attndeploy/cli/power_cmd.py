"""`attndeploy power SOURCE... [--input NxCxHxW | --imgsz S] [--sizes 1e-2,1e-3,1e-4,1e-5] [--channel 0] [--md|--json]`.

For each model: the export pipeline once (its clean graph must pass), then a bug planted in
the written graph alone — one output channel scaled by 1 + d for every size d — each judged
against the same truth (`attndeploy.detection_power`). The table gives the smallest size the
verdict catches, and the channel's noise limit (FACTOR x eager fp32's relative distance to
float64 there): sizes below it are rounding to any fp32 rule. Exit 0 when every clean
export passed, 1 otherwise; 2 for bad usage.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from attndeploy.argparsing import argument_type
from attndeploy.cli.export_options import add_options
from attndeploy.cli.output import emit, print_json, stderr
from attndeploy.errors import UsageError, require
from attndeploy.settings import ExportSettings

MODEL_OPTIONS = ("example", "kwargs", "seed", "imgsz", "custom_modules", "opset")


def _sizes(text: str) -> tuple[float, ...]:
    try:
        sizes = tuple(float(part) for part in text.split(","))
    except ValueError as err:
        raise UsageError("--sizes must be numbers joined by ','", "e.g. 1e-2,1e-3,1e-4,1e-5", repr(text)) from err
    require(all(0 < s < 1 for s in sizes), "every planted size must be in (0, 1)", "e.g. 1e-4", text)
    return sizes


def add_parser(commands: Any) -> None:
    p = commands.add_parser("power", help="the smallest bug planted in the graph that the verdict catches")
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="registry names, pkg.module:factory, file.py, YAML")
    add_options(p, MODEL_OPTIONS)
    p.add_argument("--sizes", type=argument_type(_sizes), default=None, metavar="D,D,...",
                   help="relative sizes of the planted bug (default 1e-2,1e-3,1e-4,1e-5)")
    p.add_argument("--channel", type=int, default=0, help="the output channel (axis 1) the bug scales (default 0)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="one JSON object on stdout")
    fmt.add_argument("--md", action="store_true", help="a Markdown table (the README's)")
    p.set_defaults(run=run)


def measure(source: str, given: dict[str, Any], sizes: tuple[float, ...], channel: int) -> dict[str, Any]:
    """One row: the model's clean verdict and what its planted bugs did."""
    from attndeploy.detection_power import SIZES, detection_power
    from attndeploy.pipeline import run_pipeline
    from attndeploy.pipeline.stages.export import runnable

    example = given.get("example")
    options = {k: v for k, v in given.items() if k != "example"}
    with tempfile.TemporaryDirectory(prefix="attndeploy-power-") as tmp:
        settings = ExportSettings.create(source, example, None, out_dir=Path(tmp), bundle=False, **options)
        res = run_pipeline(settings, stderr)
        row: dict[str, Any] = {"model": res.name, "input": list(res.input_shape), "clean_passed": res.passed,
                               "ratio": max(o.ratio for o in res.parity.outputs)}
        if not res.passed or res.truth is None:
            return {**row, "detail": res.parity.failure_message()}
        import onnx

        graph = runnable(onnx.load(str(res.onnx_path)))
        report = detection_power(graph, res.truth, res.parity.budget, sizes or SIZES, channel=channel)
    return {**row, **report.to_dict()}


def _cell(row: dict[str, Any], size: str) -> str:
    detected = row.get("detected", {})
    return "—" if size not in detected else ("caught" if detected[size] else "missed")


def _markdown(rows: list[dict[str, Any]], sizes: list[str]) -> list[str]:
    lines = ["| model | input | output, channel | " + " | ".join(f"d = {s}" for s in sizes)
             + " | smallest caught | noise limit | eager fp32 vs float64 |",
             "|---|---|---|" + "---|" * len(sizes) + "---|---|---|"]
    for row in rows:
        smallest = f"{row['smallest']:g}" if row.get("smallest") else "none" if row["clean_passed"] else "rejected"
        lines.append(f"| {row['model']} | {'x'.join(map(str, row['input']))} | {row.get('output', '—')}, "
                     f"{row.get('channel', '—')} | " + " | ".join(_cell(row, s) for s in sizes)
                     + f" | {smallest} | {row.get('noise_limit', 0):.1e} | {row.get('eager_noise', 0):.1e} |")
    return lines


def run(args: argparse.Namespace) -> int:
    given = {n: getattr(args, n) for n in MODEL_OPTIONS if getattr(args, n, None) is not None}
    require(args.channel >= 0, "--channel must be a channel index", ">= 0", args.channel)
    rows = [measure(source, given, args.sizes, args.channel) for source in args.sources]
    sizes = [f"{s:g}" for s in (args.sizes or (1e-2, 1e-3, 1e-4, 1e-5))]
    passed = all(r["clean_passed"] for r in rows)
    if args.json:
        print_json({"passed": passed, "sizes": sizes, "rows": rows})
    elif args.md:
        for line in _markdown(rows, sizes):
            emit(line)
    else:
        for row in rows:
            smallest = row.get("smallest")
            emit(f"{row['model']}: clean {'passed' if row['clean_passed'] else 'REJECTED'}; "
                 + ", ".join(f"d={s} {_cell(row, s)}" for s in sizes)
                 + (f"; smallest caught {smallest:g}" if smallest else "")
                 + (f"; noise limit {row['noise_limit']:.1e}" if "noise_limit" in row else ""))
    return 0 if passed else 1

"""`attndeploy list [--json]`: the registry."""

from __future__ import annotations

import argparse
from typing import Any

from attndeploy.cli.output import emit, print_json
from attndeploy.registry import all_specs
from attndeploy.shapes import format_shape


def add_parser(commands: Any) -> None:
    p = commands.add_parser("list", help="list the registry's modules")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:

    rows: list[dict[str, Any]] = [
        {"name": s.name, "reference": s.reference.__name__, "deploy": s.deploy.__name__,
         "example_shape": list(s.example_shape), "min_opset": s.min_opset, "paper": s.paper}
        for s in all_specs()
    ]
    if args.json:
        print_json({"modules": rows})
        return 0
    emit(f"{'name':<11} {'reference':<16} {'example':<12} {'opset':>5}  paper")
    for r in rows:
        emit(f"{r['name']:<11} {r['reference']:<16} {format_shape(r['example_shape']):<12} "
              f"{'>=' + str(r['min_opset']):>5}  {r['paper']}")
    return 0

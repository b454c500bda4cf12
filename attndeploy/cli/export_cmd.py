"""`attndeploy export NAME`: export, verify, simplify, parity; writes DIR/<name>.onnx and DIR/report.json."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from attndeploy.errors import UsageError
from attndeploy.exporting.exporters import EXPORTERS
from attndeploy.exporting.result import ExportResult
from attndeploy.fileio import write_json_atomic
from attndeploy.shapes import parse_shape

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


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("export", help="export a module to ONNX and check it against eager PyTorch")
    p.add_argument("name", help="a registry name (see `attndeploy list`)")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--input", type=argument_type(parse_shape), default=None, metavar="NxCxHxW",
                   help="example input shape (default: the module's example shape)")
    p.add_argument("--dynamic", action=argparse.BooleanOptionalAction, default=True,
                   help="dynamic batch, H and W (default) or --static")
    p.add_argument("--static", dest="dynamic", action="store_false", help="same as --no-dynamic")
    p.add_argument("--kwargs", type=argument_type(_json_object), default={}, metavar="JSON",
                   help='constructor arguments, e.g. \'{"channels": 32, "reduction": 8}\'')
    p.add_argument("--out", type=Path, default=None, metavar="DIR", help="output folder (default models/<name>/)")
    p.add_argument("--exporter", default="auto", help=f"one of {', '.join(EXPORTERS)}")
    p.add_argument("--deform-conv", default="auto", metavar="LOWERING",
                   help="torchvision deform_conv2d as: auto (onnx at opset >= 19, decompose at 16-18), "
                        "onnx (DeformConv), plugin (TensorRT ModulatedDeformConv2d), decompose (GridSample)")
    p.add_argument("--no-simplify", dest="simplify", action="store_false", help="skip onnxsim")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights and parity inputs")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(run=run)


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise UsageError("--kwargs must be a JSON object", 'e.g. {"channels": 32}', f"{text!r} ({err.msg})") from err
    if not isinstance(value, dict):
        raise UsageError("--kwargs must be a JSON object", 'e.g. {"channels": 32}', repr(text))
    return value


def print_table(res: ExportResult) -> None:
    p = res.parity
    print(f"{res.name}: {res.onnx_path}  (opset {res.opset}, {res.exporter}, "
          f"{'dynamic' if res.dynamic else 'static'}, {sum(res.node_counts.values())} nodes)")
    print(f"  {'output':<10} {'max abs':>10} {'max rel':>10} {'cosine':>10}  {'worst shape':<14} result")
    for o in p.outputs:
        print(f"  {o.name:<10} {o.max_abs_err:>10.2e} {o.max_rel_err:>10.2e} {o.min_cosine:>10.7f}  "
              f"{o.worst_shape:<14} {'pass' if o.passed else 'FAIL'}")
    print(f"  parity vs eager ({p.backend}, atol {p.tolerance.atol:g}, rtol {p.tolerance.rtol:g}) at "
          f"{', '.join(p.shapes)}: {'PASSED' if p.passed else 'FAILED'}")


def run(args: argparse.Namespace) -> int:
    from attndeploy.cli.main import print_json, stderr
    from attndeploy.exporting.pipeline import export
    from attndeploy.registry import create, get_spec
    from attndeploy.weights import randomize_

    spec = get_spec(args.name)
    model = randomize_(create(args.name, **args.kwargs), args.seed)
    example = args.input
    if example is None:
        n, _, h, w = spec.example_shape
        example = (n, getattr(model, "channels", spec.example_shape[1]), h, w)
    out_dir = args.out if args.out is not None else Path("models") / args.name
    res = export(model, example, out_dir / f"{args.name}.onnx", opset=args.opset, dynamic=args.dynamic, name=args.name,
                 exporter=args.exporter, simplify=args.simplify, seed=args.seed, log=stderr,
                 deform_conv=args.deform_conv)
    write_json_atomic(out_dir / "report.json", res.to_dict())
    if args.json:
        print_json(res.to_dict())
    else:
        print_table(res)
    if not res.parity.passed:
        stderr(f"parity failed: {res.parity.failure_message()}")
        return 1
    return 0

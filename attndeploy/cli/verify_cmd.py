"""`attndeploy verify BUNDLE [--engine FILE.engine | --onnx FILE.onnx] [--backend ...] [--json]`: on the device.

Runs the bundle's final graph (or the given graph, or engine) on the inputs the export
stored and judges it against eager PyTorch's outputs on them with the export's own rule and
budgets; on failure names the first PyTorch module that diverges. Needs no torch. Exit 0:
passed; 1: failed (which output, by how much, at which shape, in which module); 2: bad
usage or a bundle that cannot be read.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from attndeploy.bundle.manifest import MANIFEST_FILE, load_manifest
from attndeploy.bundle.target import BACKENDS, resolve_target
from attndeploy.bundle.verify import VerifyResult, verify_bundle
from attndeploy.cli.output import emit, print_json, stderr
from attndeploy.verdict import Verdict, key_label

HELP = "check a bundle's graph or TensorRT engine against the eager truth it carries (no torch needed)"


def add_parser(commands: Any) -> None:
    p = commands.add_parser("verify", help=HELP, description=HELP + ". By default the bundle's final graph (the "
                            "fp16 or int8 one when the export made it, else the fp32 one) runs in onnxruntime on "
                            "the CPU; --engine runs an engine in TensorRT.")
    p.add_argument("bundle", type=Path, metavar="BUNDLE", help=f"the bundle folder (where export wrote the graph and "
                   f"{MANIFEST_FILE}) or its {MANIFEST_FILE}")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--engine", type=Path, default=None, metavar="FILE.engine",
                       help="a TensorRT engine of one of the bundle's graphs (bash build_engine.sh builds them)")
    which.add_argument("--onnx", type=Path, default=None, metavar="FILE.onnx",
                       help="another graph to judge (default: the bundle's final graph)")
    p.add_argument("--backend", default=None, metavar="|".join(("tensorrt", "onnxruntime")),
                   help=f"one of {', '.join(BACKENDS)} (default: tensorrt with --engine, else onnxruntime on the CPU; "
                        "tensorrt without --engine runs <graph stem>.engine beside the graph)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(run=run)


def _verdict_lines(v: Verdict) -> list[str]:
    state = "PASSED" if bool(v.shapes) and v.passed else "FAILED"
    lines = [f"  {key_label((v.precision, v.backend))} vs eager ({v.budget.describe()}) at {', '.join(v.shapes)}: "
             f"{state}", f"  {'output':<12} {'max abs':>10} {'max rel':>10} {'cosine':>10}  {'worst shape':<14} result"]
    lines += [f"  {o.name:<12} {o.max_abs_err:>10.2e} {o.max_rel_err:>10.2e} {o.min_cosine:>10.7f}  "
              f"{o.worst_shape:<14} {'pass' if o.passed else 'FAIL'}" for o in v.outputs]
    return lines


def print_result(result: VerifyResult) -> None:
    target = result.target
    what = target.engine if target.engine is not None else target.graph
    emit(f"{result.manifest.name}: {what} ({target.precision}, {target.backend}), bundle {result.folder}")
    for line in _verdict_lines(result.verdict):
        emit(line)
    if result.engine_precision is not None:
        emit(f"  engine precision: {result.engine_precision.describe()}")
    if result.localisation is not None:
        emit(f"  {result.localisation.message()}")
    for note in [*result.verdict.notes, *result.notes]:
        emit(f"  note: {note}")


def run(args: argparse.Namespace) -> int:
    folder, manifest = load_manifest(args.bundle)
    target = resolve_target(folder, manifest, args.onnx, args.engine, args.backend)
    result = verify_bundle(folder, manifest, target, stderr)
    if args.json:
        print_json(result.to_dict())
    else:
        print_result(result)
    if not result.passed:
        stderr(f"verify failed ({key_label(target.key)}): {result.verdict.failure_message()}")
    return 0 if result.passed else 1

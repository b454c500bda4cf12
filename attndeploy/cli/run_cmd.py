"""`attndeploy run MODEL --input FILE.npy|random`: run an ONNX model or engine, print outputs and timing.

Exit 0: the model ran; 1: the backend failed at run time on an input the model declares
it takes (a broken graph); 2: bad usage or an input outside what the model accepts (wrong
rank, dtype or static dim, a dynamic size the graph cannot take, an input too large for
this machine's memory).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from attndeploy.argparsing import argument_type
from attndeploy.cli.output import emit
from attndeploy.cli.run_backend import make_runner
from attndeploy.defaults import FILE_BACKENDS
from attndeploy.errors import CheckFailed, UsageError, first_line, require
from attndeploy.limits import check_bytes, check_tensor_bytes
from attndeploy.shapes import format_shape, parse_shape

# onnxruntime's status for "these inputs are invalid for this graph" (its exception class name)
ORT_INVALID_INPUT = ("InvalidArgument",)


def add_parser(commands: Any) -> None:
    p = commands.add_parser("run", help="run an ONNX model or TensorRT engine and time it")
    p.add_argument("model", type=Path, help="a .onnx file (onnxruntime-*) or a .engine file (tensorrt)")
    p.add_argument("--input", default="random", help="a .npy file, or 'random' with --shape")
    p.add_argument("--shape", type=argument_type(parse_shape), default=None, metavar="NxCxHxW",
                   help="shape of the random input (default: the model's static shape)")
    p.add_argument("--backend", default=None, help=f"one of {', '.join(FILE_BACKENDS)} (default by file type)")
    p.add_argument("--runs", type=int, default=20, help="timed runs after 3 warm-up runs")
    p.set_defaults(run=run)


def _load_npy(path: Path) -> np.ndarray:
    require(path.suffix == ".npy" and path.is_file(), "--input must be an existing .npy file or 'random'",
            "FILE.npy or random", str(path))
    check_bytes(path.stat().st_size, f"--input {path}")  # np.load reads at most the file
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise UsageError("--input must hold a plain numpy array", "a .npy array", f"{path}: {err}") from err


def _input_array(args: argparse.Namespace, spec: Any) -> np.ndarray:
    if args.input != "random":
        return _load_npy(Path(args.input))
    declared = spec.shape
    shape = args.shape or declared
    require(shape is not None and all(d > 0 for d in shape), "a random input needs a shape for the model's "
            "dynamic dims", "--shape NxCxHxW", "any rank" if declared is None else
            format_shape(declared).replace("-1", "?"))
    try:
        dtype = np.dtype(spec.dtype)
    except TypeError as err:
        raise UsageError("attndeploy run feeds numeric inputs", "a float or integer input",
                         f"input {spec.name!r} of type {spec.dtype}") from err
    check_tensor_bytes(shape, f"a random {spec.dtype} input of shape {format_shape(shape)}", dtype.itemsize)
    return np.random.default_rng(0).standard_normal(shape).astype(dtype)


def _activate(runner: Any, model: Path, backend: str) -> None:
    try:
        runner.activate()
    except UsageError:
        raise
    except Exception as err:  # a backend's own exception types
        raise UsageError(f"{backend} must be able to load the model", "a model this backend reads",
                         f"{model}: {first_line(err, with_type=True)}") from err


def _infer(runner: Any, feeds: dict[str, np.ndarray], shape_chosen: bool, backend: str) -> dict[str, np.ndarray]:
    """`runner.infer`, its failures as one line: exit 2 for an input the graph refuses, else exit 1."""
    try:
        return runner.infer(feeds)
    except UsageError:  # the feeds were checked against the model's declared inputs
        raise
    except Exception as err:
        x = next(iter(feeds.values()))
        where = f"{format_shape(x.shape)} {x.dtype}"
        if shape_chosen and type(err).__name__ in ORT_INVALID_INPUT:
            raise UsageError("the input must be one the model can take", "a shape the graph accepts (see how it "
                             "was exported)", f"{where}: {first_line(err)}") from err
        raise CheckFailed(f"{backend} failed running the model on {where}: {first_line(err, with_type=True)}") from err


def run(args: argparse.Namespace) -> int:

    require(args.runs >= 1, "--runs must be positive", ">= 1", args.runs)
    backend = args.backend or ("tensorrt" if args.model.suffix == ".engine" else "onnxruntime-cpu")
    runner = make_runner(backend, args.model)
    try:
        _activate(runner, args.model, backend)
        inputs = [s for s in runner.specs if s.is_input]
        require(len(inputs) == 1, "attndeploy run feeds single-input models", "one input",
                f"{len(inputs)} inputs: {', '.join(s.name for s in inputs)}")
        x = _input_array(args, inputs[0])
        feeds = {inputs[0].name: x}
        shape_chosen = inputs[0].shape is None or any(d < 0 for d in inputs[0].shape)
        for _ in range(3):
            outputs = _infer(runner, feeds, shape_chosen, backend)
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            outputs = _infer(runner, feeds, shape_chosen, backend)
            times.append(time.perf_counter() - start)
    finally:
        runner.close()
    emit(f"{args.model} on {backend}, input {format_shape(x.shape)} {x.dtype}")
    for name, value in outputs.items():
        emit(f"  {name:<10} {format_shape(value.shape):<16} {value.dtype}")
    times.sort()
    emit(f"  median {1e3 * statistics.median(times):.3f} ms, p90 {1e3 * times[int(0.9 * (len(times) - 1))]:.3f} ms "
         f"over {args.runs} runs")
    return 0

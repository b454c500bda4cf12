"""`attndeploy run MODEL --input FILE.npy|random`: run an ONNX model or engine, print outputs and timing."""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from attndeploy.argparsing import argument_type
from attndeploy.errors import UsageError, require
from attndeploy.runtimes.backends import FILE_BACKENDS, make_runner
from attndeploy.runtimes.feeds import IOSpec
from attndeploy.shapes import format_shape, parse_shape


def add_parser(commands: Any) -> None:
    p = commands.add_parser("run", help="run an ONNX model or TensorRT engine and time it")
    p.add_argument("model", type=Path, help="a .onnx file (onnxruntime-*) or a .engine file (tensorrt)")
    p.add_argument("--input", default="random", help="a .npy file, or 'random' with --shape")
    p.add_argument("--shape", type=argument_type(parse_shape), default=None, metavar="NxCxHxW",
                   help="shape of the random input (default: the model's static shape)")
    p.add_argument("--backend", default=None, help=f"one of {', '.join(FILE_BACKENDS)} (default by file type)")
    p.add_argument("--runs", type=int, default=20, help="timed runs after 3 warm-up runs")
    p.set_defaults(run=run)


def _input_array(args: argparse.Namespace, spec: IOSpec) -> np.ndarray:
    if args.input != "random":
        path = Path(args.input)
        require(path.suffix == ".npy" and path.is_file(), "--input must be an existing .npy file or 'random'",
                "FILE.npy or random", args.input)
        try:
            return np.load(path, allow_pickle=False)
        except ValueError as err:
            raise UsageError("--input must hold a plain numpy array", "a .npy array", f"{path}: {err}") from err
    shape = args.shape or spec.shape
    require(all(d > 0 for d in shape), "a random input needs a shape for the model's dynamic dims",
            "--shape NxCxHxW", format_shape(spec.shape).replace("-1", "?"))
    return np.random.default_rng(0).standard_normal(shape).astype(spec.dtype)


def run(args: argparse.Namespace) -> int:
    require(args.runs >= 1, "--runs must be positive", ">= 1", args.runs)
    backend = args.backend or ("tensorrt" if args.model.suffix == ".engine" else "onnxruntime-cpu")
    with make_runner(backend, args.model) as runner:
        inputs = [s for s in runner.specs if s.is_input]
        require(len(inputs) == 1, "attndeploy run feeds single-input models", "one input",
                f"{len(inputs)} inputs: {', '.join(s.name for s in inputs)}")
        x = _input_array(args, inputs[0])
        feeds = {inputs[0].name: x}
        for _ in range(3):
            outputs = runner.infer(feeds)
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            outputs = runner.infer(feeds)
            times.append(time.perf_counter() - start)
    print(f"{args.model} on {backend}, input {format_shape(x.shape)} {x.dtype}")
    for name, value in outputs.items():
        print(f"  {name:<10} {format_shape(value.shape):<16} {value.dtype}")
    times.sort()
    print(f"  median {1e3 * statistics.median(times):.3f} ms, p90 {1e3 * times[int(0.9 * (len(times) - 1))]:.3f} ms "
          f"over {args.runs} runs")
    return 0

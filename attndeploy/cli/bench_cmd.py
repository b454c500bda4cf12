"""`attndeploy bench [NAMES...]`: time eager reference, deploy twin and exported graphs, interleaved.

stdout: the table (or, with --json, one JSON object holding every figure: also for
`--precisions` and `--export`); stderr: a progress bar. Exit 0 when every runnable backend
ran (n/a and skipped are not failures), 1 when a backend errored (e.g. the deploy export
failed parity; for `--precisions` / `--export`, a graph that failed its checks), 2 for bad
usage. The folders `--precisions` and `--export` write are removed when they made them and
the bench fails or is interrupted.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from attndeploy.argparsing import argument_type
from attndeploy.bench import plan_bench, run_bench
from attndeploy.bench.export_speed import add_export_arguments, run_export_bench
from attndeploy.bench.precision import bench_precisions
from attndeploy.bench.report import format_markdown, format_table
from attndeploy.cli.output import emit, print_json, stderr
from attndeploy.errors import UsageError
from attndeploy.fileio import check_output_file, ensure_writable_dir, removed_on_failure
from attndeploy.limits import parse_seed
from attndeploy.shapes import parse_shape


def parse_batches(text: str) -> list[int]:
    """`"1,8"` -> `[1, 8]`."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise UsageError("--batch must be positive integers joined by ','", "e.g. 1,8", repr(text))
    return [int(p) for p in parts]


def parse_names(text: str) -> list[str]:
    """`"a,b"` -> `["a", "b"]` (comma-separated names)."""
    names = [p.strip() for p in text.split(",") if p.strip()]
    if not names:
        raise UsageError("the list must name at least one item", "e.g. onnxruntime,eager-deploy", repr(text))
    return names


def add_parser(commands: argparse._SubParsersAction) -> None:
    from attndeploy.bench.plan import DEFAULT_BATCHES

    p = commands.add_parser("bench", help="time eager PyTorch against the exported graphs, interleaved")
    p.add_argument("names", nargs="*", metavar="NAME", help="registry names (default: all)")
    p.add_argument("--input", type=argument_type(parse_shape), default=None, metavar="NxCxHxW",
                   help="input shape for every module (default: each module's example shape)")
    p.add_argument("--batch", type=argument_type(parse_batches), default=None, metavar="N[,N...]",
                   help=f"batch sizes replacing N (default: {','.join(map(str, DEFAULT_BATCHES))}, "
                        "or the N of --input)")
    p.add_argument("--backends", type=argument_type(parse_names), default=None, metavar="B[,B...]",
                   help="eager-reference, eager-deploy, onnxruntime, onnxruntime-reference, eager-reference-cuda, "
                        "eager-deploy-cuda, onnxruntime-cuda, onnxruntime-trt, tensorrt (default: all; those "
                        "not installed are skipped with the reason)")
    p.add_argument("--threads", type=int, default=None, help="torch and onnxruntime intra-op threads "
                   "(default: all cores)")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls per backend first (default 3)")
    p.add_argument("--iters", type=int, default=30, help="timed interleaved rounds (default 30)")
    p.add_argument("--max-seconds", type=float, default=10.0,
                   help="stop the rounds of one module and shape after this long, >= 5 rounds (default 10)")
    p.add_argument("--opset", type=int, default=17, help="opset of the exported deploy graph (default 17)")
    p.add_argument("--seed", type=argument_type(parse_seed), default=0,
                   help="seed of the random weights and inputs (0..2**63-1)")
    p.add_argument("--copy-mib", type=int, default=128, help="size of the bandwidth copy in MiB (default 128)")
    p.add_argument("--ort-profile", action="store_true",
                   help="add onnxruntime's per-op-type kernel times (its profiler) to the JSON")
    p.add_argument("--ort-level", default="all", metavar="LEVEL",
                   help="onnxruntime graph optimization: all (default; includes the NCHWc layout transform), "
                        "extended, basic, none")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one JSON object with every figure on stdout")
    out.add_argument("--md", action="store_true", help="the Markdown speed table (the README's) on stdout")
    p.add_argument("--plot", type=Path, default=None, metavar="FILE.png", help="bar chart (needs matplotlib)")
    speed = p.add_argument_group("export speed: attndeploy's verified export against ultralytics' exporter")
    speed.add_argument("--export", default=None, metavar="MODEL.yaml",
                       help="time both exporters on a detector YAML (instead of the module bench)")
    speed.add_argument("--custom-modules", type=Path, default=None, metavar="FILE.py",
                       help="classes the YAML names, made visible to its parser")
    add_export_arguments(speed)
    p.add_argument("--precisions", default=None, metavar="MODEL",
                   help="time a whole model's fp32, fp16 and int8 graphs in onnxruntime CPU (with --input, "
                        "--threads, --iters; MODEL as `attndeploy export` takes it)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar on stderr")
    p.set_defaults(run=run)


def _busy(threads: int) -> str:
    """A warning when other processes already load the cores (timings then measure the scheduler too)."""
    import os

    from attndeploy.bench.plan import all_cores

    try:
        load = os.getloadavg()[0]
    except OSError:
        return ""
    if load + threads > all_cores() + 0.5:
        return (f"warning: load average {load:.1f} on {all_cores()} cores before starting, with {threads} thread(s) "
                "requested: timings will include waiting for a core (try a quieter machine or --threads 1)")
    return ""


PRECISION_FOLDER = Path("models/bench-precision")


def _precisions(args: argparse.Namespace) -> int:
    if args.input is None:
        raise UsageError("--precisions needs the model's input shape", "--input NxCxHxW", "no --input")
    check_output_file(PRECISION_FOLDER / "fp16" / "model.onnx")
    with removed_on_failure([PRECISION_FOLDER]):
        rows = bench_precisions(args.precisions, tuple(args.input), PRECISION_FOLDER, args.threads or 1, args.iters)
    passed = all(r["passed"] for r in rows)
    if args.json:
        print_json({"model": args.precisions, "input": list(args.input), "threads": args.threads or 1,
                    "passed": passed, "graphs": rows})
        return 0 if passed else 1
    emit(f"{'graph':<14} {'median ms':>10} {'x fp32':>7} {'cosine':>10}  checks")
    for r in rows:
        emit(f"{r['graph']:<14} {r['median_ms']:>10.2f} {r['speedup_vs_fp32']:>7.2f} {r['min_cosine']:>10.6f}  "
             f"{'passed' if r['passed'] else 'FAILED'}")
    return 0 if passed else 1


def _export_speed(args: argparse.Namespace) -> int:
    report = run_export_bench(args.export, args, stderr)
    if args.json:
        print_json(report.to_dict())
    else:
        for line in report.lines():
            emit(line)
    return 0 if report.passed else 1


def run(args: argparse.Namespace) -> int:
    if args.export is not None:
        return _export_speed(args)
    if args.precisions is not None:
        return _precisions(args)

    if args.plot is not None:
        from attndeploy.bench.plot import require_matplotlib

        require_matplotlib()
        if args.plot.suffix.lower() != ".png":
            raise UsageError("--plot writes a PNG file", "a path ending in .png", str(args.plot))
        ensure_writable_dir(args.plot.parent if str(args.plot.parent) else Path("."))
    plan = plan_bench(args.names, input_shape=args.input, batches=args.batch, backends=args.backends or (),
                      threads=args.threads, warmup=args.warmup, iters=args.iters, max_seconds=args.max_seconds,
                      opset=args.opset, seed=args.seed, copy_mib=args.copy_mib, ort_profile=args.ort_profile,
                      ort_level=args.ort_level)
    for backend, reason in plan.skipped.items():
        stderr(f"skipping {backend}: {reason}")
    busy = _busy(plan.threads)
    if busy:
        stderr(busy)
    result = run_bench(plan, progress=args.progress)
    if args.plot is not None:
        from attndeploy.bench.plot import plot_bench

        result["plot"] = str(plot_bench(result, args.plot))
    if args.json:
        print_json(result)
    elif args.md:
        emit(format_markdown(result))
    else:
        emit(format_table(result))
    errors = [(c["module"], c["input"], b, e["reason"]) for c in result["results"]
              for b, e in c["backends"].items() if e.get("status") == "error"]
    for module, shape, backend, reason in errors:
        stderr(f"{backend} failed on {module} {shape}: {reason}")
    return 1 if errors else 0

"""`python -m attndeploy.selftest [--gpu] [--names se,cbam] [--out FILE]`: the registry on whatever this machine has.

Per module: export + onnxruntime CPU parity (always); eager CUDA fp32 (TF32 off) and fp16
against the eager CPU reference, onnxruntime's CUDA provider, and TensorRT fp32/fp16
engines, each where installed (else skipped with the reason). Writes one JSON report and
prints a summary; exit 0 when every stage that ran passed, 1 otherwise, 2 for bad usage
(e.g. `--gpu` without a CUDA device), 130/143 when interrupted: the CLI's contract
(`attndeploy.cli.main.run_guarded`), so an interrupted run leaves no temporary folder.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import attndeploy
from attndeploy.argparsing import UsageErrorParser
from attndeploy.cli.main import parse_and_run, run_guarded
from attndeploy.cli.output import emit, stderr
from attndeploy.copying import private_copy
from attndeploy.defaults import TRT_FP16_MIN_COSINE
from attndeploy.errors import CheckFailed, UsageError, first_line, require
from attndeploy.fileio import check_output_file, ensure_writable_dir, write_json_atomic
from attndeploy.pipeline import run_pipeline
from attndeploy.pipeline.result import ExportResult
from attndeploy.registry import create, get_spec
from attndeploy.runtimes.onnxruntime_runner import available_providers
from attndeploy.runtimes.torch_runner import TorchRunner
from attndeploy.settings import EngineSettings, ExportSettings
from attndeploy.tensorrt._api import tensorrt_unavailable
from attndeploy.verdict import Budget, TruthData, Verdict, judge
from attndeploy.weights import randomize_

Stage = dict[str, Any]


def _stage(verdict: Verdict) -> Stage:
    return {"passed": verdict.passed, "max_abs_err": verdict.max_abs_err, "min_cosine": verdict.min_cosine,
            "detail": verdict.failure_message()}


def _skip(reason: str) -> Stage:
    return {"passed": None, "skipped": reason}


def _eager_cuda(model: torch.nn.Module, truth: TruthData, dtype: torch.dtype) -> Stage:
    """Eager on CUDA in `dtype` judged against the export's truth (not an export: the comparison only); fp32 by the
    float64-anchored rule, fp16 by the engine's fp16 cosine floor."""
    budget = Budget.cosine(TRT_FP16_MIN_COSINE, "fp16") if dtype == torch.float16 else Budget.float64()
    with TorchRunner(private_copy(model), "cuda", dtype) as runner:
        verdict = judge(truth.probes, lambda x: list(runner.infer({"input": x}).values()), truth.output_names, budget,
                        ("fp16" if dtype == torch.float16 else "fp32", runner.name), truth.reference)
    return _stage(verdict)


def _export(model: torch.nn.Module, name: str, workdir: Path, **options: Any) -> ExportResult:
    """One run: the fp32 graph and, from the same truth, the fp16 one (each built as an engine with `engine`)."""
    settings = ExportSettings.create(model, get_spec(name).example_shape, workdir / f"{name}.onnx", opset=17,
                                     name=name, bundle=False, **options)
    return run_pipeline(settings, also=("fp16",))


def _pipeline_stages(model: torch.nn.Module, name: str, workdir: Path, trt_missing: str | None
                     ) -> tuple[dict[str, Stage], TruthData | None]:
    """onnxruntime CPU (and CUDA where installed) and the TensorRT fp32 and fp16 engines, in one run; and the
    export's truth."""
    cuda_ep = "CUDAExecutionProvider" in available_providers()
    backends = ("onnxruntime-cpu", "onnxruntime-cuda") if cuda_ep else ("onnxruntime-cpu",)
    stages: dict[str, Stage] = {}
    try:
        res = _export(model, name, workdir, backends=backends, engine=None if trt_missing else EngineSettings())
    except (UsageError, CheckFailed) as err:
        return {"onnxruntime-cpu": {"passed": False, "detail": first_line(err)}}, None
    stages["onnxruntime-cpu"] = _stage(res.parities[("fp32", "onnxruntime-cpu")])
    stages["onnxruntime-cuda"] = (_stage(res.parities[("fp32", "onnxruntime-cuda")]) if cuda_ep
                                  else _skip("onnxruntime has no CUDAExecutionProvider"))
    for precision in ("fp32", "fp16"):
        key = f"tensorrt-{precision}"
        if trt_missing:
            stages[key] = _skip(trt_missing)
            continue
        if not res.parity.passed:
            stages[key] = _skip("the ONNX export did not pass")
            continue
        engine = res.engines.get(precision)
        if engine is None:  # the engine stage runs on a graph that passed only
            stages[key] = {"passed": False, "detail": f"no engine: the {precision} graph did not pass"}
            continue
        stages[key] = {**_stage(engine.parity), "engine": str(engine.build.engine_path)}
    return stages, res.truth


def run_module(name: str, workdir: Path, cuda: bool, trt_missing: str | None) -> dict[str, Stage]:
    model = randomize_(create(name)).eval()
    stages, truth = _pipeline_stages(model, name, workdir, trt_missing)
    no_cuda = "no CUDA device (torch.cuda.is_available() is False)"
    for key, dtype in (("eager-cuda-fp32", torch.float32), ("eager-cuda-fp16", torch.float16)):
        try:
            if not cuda:
                stages[key] = _skip(no_cuda)
            elif truth is None:
                stages[key] = _skip("the export made no truth")
            else:
                stages[key] = _eager_cuda(model, truth, dtype)
        except (UsageError, CheckFailed, RuntimeError) as err:
            stages[key] = {"passed": False, "detail": first_line(err)}
    order = ("onnxruntime-cpu", "eager-cuda-fp32", "eager-cuda-fp16", "onnxruntime-cuda", "tensorrt-fp32",
             "tensorrt-fp16")
    return {k: stages[k] for k in order if k in stages}


def selftest(names: list[str], gpu: bool, log: Callable[[str], None]) -> dict[str, Any]:
    cuda = torch.cuda.is_available()
    if gpu:
        require(cuda, "--gpu needs a CUDA device", "torch.cuda.is_available() is True", "False")
    trt_missing = tensorrt_unavailable() if cuda else "no CUDA device"
    results: dict[str, dict[str, Stage]] = {}
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # fp32 parity needs TF32 off
    try:
        with tempfile.TemporaryDirectory(prefix="attndeploy-selftest-") as tmp:
            for i, name in enumerate(names, 1):
                log(f"[{i}/{len(names)}] {name}")
                results[name] = run_module(name, Path(tmp), cuda, trt_missing)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
    ran = [s for stages in results.values() for s in stages.values() if s.get("passed") is not None]
    return {
        "machine": {"python": platform.python_version(), "torch": torch.__version__,
                    "cuda": torch.cuda.get_device_name(0) if cuda else None,
                    "onnxruntime_providers": available_providers(), "tensorrt": trt_missing or "installed"},
        "passed": all(s["passed"] for s in ran),
        "stages_run": len(ran), "stages_failed": sum(not s["passed"] for s in ran),
        "modules": results,
    }


def print_summary(report: dict[str, Any]) -> None:
    stages = list(next(iter(report["modules"].values())))
    emit(f"{'module':<11}" + "".join(f"{s:>18}" for s in stages))
    for name, results in report["modules"].items():
        cells = []
        for s in stages:
            r = results[s]
            cells.append("skip" if r["passed"] is None else
                         (f"ok {r['max_abs_err']:.1e}" if r["passed"] else "FAIL"))
        emit(f"{name:<11}" + "".join(f"{c:>18}" for c in cells))
    emit(f"{report['stages_run']} stages ran, {report['stages_failed']} failed; "
         f"CUDA: {report['machine']['cuda'] or 'none'}; TensorRT: {report['machine']['tensorrt']}")


def _parser() -> UsageErrorParser:
    parser = UsageErrorParser(prog="python -m attndeploy.selftest", description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", action="store_true", help="fail (exit 2) unless a CUDA device is present")
    parser.add_argument("--names", default=None, help="comma-separated registry names (default: all)")
    parser.add_argument("--out", type=Path, default=Path("models/selftest.json"))
    parser.set_defaults(run=_run)
    return parser


def _run(args: argparse.Namespace) -> int:
    names = args.names.split(",") if args.names else attndeploy.list_modules()
    for n in names:
        attndeploy.get_spec(n)
    check_output_file(args.out)
    ensure_writable_dir(args.out.parent)
    report = selftest(names, args.gpu, stderr)
    write_json_atomic(args.out, report)
    print_summary(report)
    emit(f"report: {args.out}")
    return 0 if report["passed"] else 1


def main(argv: list[str] | None = None) -> int:
    """Exit 0: every stage that ran passed; 1: one failed; 2: bad usage (one `error:` line), before any stage;
    130/143: interrupted (SIGINT/SIGTERM), leaving no temporary folder and no output folder it created."""
    words = list(sys.argv[1:] if argv is None else argv)
    return run_guarded(lambda: parse_and_run(_parser(), words))


if __name__ == "__main__":
    sys.exit(main())

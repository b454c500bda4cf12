"""`python -m attndeploy.selftest [--gpu] [--names se,cbam] [--out FILE]`: the registry on whatever this machine has.

Per module: export + onnxruntime CPU parity (always); eager CUDA fp32 (TF32 off) and fp16
against the eager CPU reference, onnxruntime's CUDA provider, and TensorRT fp32/fp16
engines, each where installed (else skipped with the reason). Writes one JSON report and
prints a summary; exit 0 when every stage that ran passed, 1 otherwise, 2 for bad usage
(e.g. `--gpu` without a CUDA device).
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
from attndeploy.errors import CheckFailed, UsageError, first_line, require
from attndeploy.fileio import write_json_atomic
from attndeploy.parity import ParityReport, check_parity
from attndeploy.registry import ModuleSpec, Tolerance
from attndeploy.runtimes.onnxruntime_runner import (
    PROVIDERS,
    OnnxRuntimeRunner,
    available_providers,
)
from attndeploy.runtimes.torch_runner import TorchRunner

FP32_TOL, FP16_TOL, FP16_MIN_COSINE = Tolerance(1e-4, 1e-3), Tolerance(1e-2, 1e-2), 0.999
Stage = dict[str, Any]


def _stage(parity: ParityReport, min_cosine: float | None = None) -> Stage:
    cosine = min(o.min_cosine for o in parity.outputs)
    passed = parity.passed and (min_cosine is None or cosine >= min_cosine)
    return {"passed": passed, "max_abs_err": parity.max_abs_err, "min_cosine": cosine,
            "detail": parity.failure_message() or ("" if passed else f"cosine {cosine:.5f} < {min_cosine}")}


def _skip(reason: str) -> Stage:
    return {"passed": None, "skipped": reason}


def _eager_cuda(model: torch.nn.Module, spec: ModuleSpec, dtype: torch.dtype) -> Stage:
    tol, cosine = (FP16_TOL, FP16_MIN_COSINE) if dtype == torch.float16 else (FP32_TOL, None)
    runner = TorchRunner(_copy(model), "cuda", dtype)
    with runner:
        parity = check_parity(model, lambda x: list(runner.infer({"input": x}).values()), ["output"],
                              spec.parity_shapes(), tol, f"eager-cuda-{dtype}".replace("torch.", ""))
    return _stage(parity, cosine)


def _copy(model: torch.nn.Module) -> torch.nn.Module:
    import copy

    return copy.deepcopy(model)


def _ort_cuda(model: torch.nn.Module, spec: ModuleSpec, onnx_path: Path) -> Stage:
    with OnnxRuntimeRunner(onnx_path, PROVIDERS["onnxruntime-cuda"]) as runner:
        parity = check_parity(model, lambda x: list(runner.infer({"input": x}).values()), runner.output_names,
                              spec.parity_shapes(), FP32_TOL, "onnxruntime-cuda")
    return _stage(parity)


def _tensorrt(model: torch.nn.Module, spec: ModuleSpec, onnx_path: Path, fp16: bool) -> Stage:
    from attndeploy.tensorrt.deploy import engine_for_export

    report = engine_for_export(onnx_path, model, spec.example_shape, spec=spec, fp16=fp16)
    return {**_stage(report.parity, report.min_cosine), "engine": str(report.build.engine_path)}


def _exported(path: Path | None) -> Path:
    if path is None:
        raise CheckFailed("the ONNX export did not pass")
    return path


def _tensorrt_missing() -> str | None:
    from attndeploy.tensorrt._api import require_tensorrt

    try:
        require_tensorrt()
    except UsageError as err:
        return str(err)
    return None


def run_module(name: str, workdir: Path, cuda: bool, trt_missing: str | None) -> dict[str, Stage]:
    spec = attndeploy.get_spec(name)
    model = attndeploy.randomize_(attndeploy.create(name)).eval()
    stages: dict[str, Stage] = {}
    try:
        res = attndeploy.export(model, spec.example_shape, workdir / f"{name}.onnx", opset=17, name=name)
        stages["onnxruntime-cpu"] = _stage(res.parity)
        onnx_path: Path | None = res.onnx_path if res.parity.passed else None
    except (UsageError, CheckFailed) as err:
        stages["onnxruntime-cpu"] = {"passed": False, "detail": str(err)}
        onnx_path = None
    no_cuda = "no CUDA device (torch.cuda.is_available() is False)"
    checks: list[tuple[str, Callable[[], Stage], str | None]] = [
        ("eager-cuda-fp32", lambda: _eager_cuda(model, spec, torch.float32), None if cuda else no_cuda),
        ("eager-cuda-fp16", lambda: _eager_cuda(model, spec, torch.float16), None if cuda else no_cuda),
        ("onnxruntime-cuda", lambda: _ort_cuda(model, spec, _exported(onnx_path)),
         None if "CUDAExecutionProvider" in available_providers() else "onnxruntime has no CUDAExecutionProvider"),
        ("tensorrt-fp32", lambda: _tensorrt(model, spec, _exported(onnx_path), False), trt_missing),
        ("tensorrt-fp16", lambda: _tensorrt(model, spec, _exported(onnx_path), True), trt_missing),
    ]
    for stage, check, reason in checks:
        if reason is None and onnx_path is None and stage.startswith(("onnxruntime", "tensorrt")):
            reason = "the ONNX export did not pass"
        try:
            stages[stage] = _skip(reason) if reason else check()
        except (UsageError, CheckFailed, RuntimeError) as err:
            stages[stage] = {"passed": False, "detail": first_line(err)}
    return stages


def selftest(names: list[str], gpu: bool, log: Callable[[str], None]) -> dict[str, Any]:
    cuda = torch.cuda.is_available()
    if gpu:
        require(cuda, "--gpu needs a CUDA device", "torch.cuda.is_available() is True", "False")
    trt_missing = _tensorrt_missing() if cuda else "no CUDA device"
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
    print(f"{'module':<11}" + "".join(f"{s:>18}" for s in stages))
    for name, results in report["modules"].items():
        cells = []
        for s in stages:
            r = results[s]
            cells.append("skip" if r["passed"] is None else
                         (f"ok {r['max_abs_err']:.1e}" if r["passed"] else "FAIL"))
        print(f"{name:<11}" + "".join(f"{c:>18}" for c in cells))
    print(f"{report['stages_run']} stages ran, {report['stages_failed']} failed; "
          f"CUDA: {report['machine']['cuda'] or 'none'}; TensorRT: {report['machine']['tensorrt']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m attndeploy.selftest", description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", action="store_true", help="fail (exit 2) unless a CUDA device is present")
    parser.add_argument("--names", default=None, help="comma-separated registry names (default: all)")
    parser.add_argument("--out", type=Path, default=Path("models/selftest.json"))
    args = parser.parse_args(argv)
    try:
        names = args.names.split(",") if args.names else attndeploy.list_modules()
        for n in names:
            attndeploy.get_spec(n)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        report = selftest(names, args.gpu, lambda m: print(m, file=sys.stderr, flush=True))
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    write_json_atomic(args.out, report)
    print_summary(report)
    print(f"report: {args.out}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""Reduced precision in the bench: the fp16 and INT8 graphs the pipeline writes, timed in onnxruntime CPU.

Per registry module (`attndeploy bench --backends onnxruntime,onnxruntime-fp16,onnxruntime-int8,...`):
`export_variant(...)` (through `ModuleContext.reduced_onnx`) runs `run_pipeline(ExportSettings.create(...,
precision=...))` on the module's reference (int8 calibrated on `CALIBRATION_SAMPLES`
N(0, 1) feature maps: the module's own kind of input) and hands the graph to the
onnxruntime backends `onnxruntime-fp16`, `onnxruntime-int8` (TensorRT's Q/DQ flavour)
and `onnxruntime-int8-ort-cpu`.

For a whole model (a detector), `bench_precisions(source, shape, folder)` makes the fp32,
fp16, int8 (trt) and int8 (ort-cpu) graphs in one pipeline run (one truth) and times them
interleaved in onnxruntime CPU at `threads` threads:

    attndeploy bench --precisions tests.detector_models:yolo --input 1x3x640x640 --threads 1

(ultralytics offline: `YOLO_OFFLINE=1 YOLO_CONFIG_DIR=$(mktemp -d)`). Each row has the
median ms, the speed-up over fp32 and the graph's lowest output cosine against eager.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from attndeploy.bench.timing import summarize, time_interleaved
from attndeploy.errors import CheckFailed
from attndeploy.pipeline import run_pipeline
from attndeploy.runtimes.onnxruntime_runner import ort_session
from attndeploy.settings import ExportSettings
from attndeploy.shapes import Shape

CALIBRATION_SAMPLES = 16
VARIANTS = {"fp16": ("fp16", "trt"), "int8": ("int8", "trt"), "int8-ort-cpu": ("int8", "ort-cpu")}


def _calibration(shape: Shape, seed: int, image_like: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    size = (CALIBRATION_SAMPLES, *shape[1:])
    return (rng.random(size, dtype=np.float32) if image_like else rng.standard_normal(size, dtype=np.float32))


def export_variant(source: Any, shape: Shape, out: Path, variant: str, seed: int = 0, **options: Any) -> Any:
    """`run_pipeline` of `source` at `variant` ("fp32", "fp16", "int8", "int8-ort-cpu"); the ExportResult.

    int8 is calibrated on `CALIBRATION_SAMPLES` inputs like the model's (uniform [0, 1) for
    3-channel inputs, N(0, 1) feature maps otherwise) unless `options` give `calibration`.
    """
    precision, flavour = VARIANTS.get(variant, ("fp32", "trt"))
    if precision == "int8":
        options.setdefault("calibration", _calibration(shape, seed + 11, shape[1] == 3))
        options["int8_flavour"] = flavour
    settings = ExportSettings.create(source, shape, out, precision=precision, seed=seed, bundle=False, **options)
    res = run_pipeline(settings)
    if res.precision != precision:  # the precision stage runs on an fp32 graph that passed only
        raise CheckFailed(f"{res.name}: no {variant} graph: the fp32 graph failed its checks "
                          f"({res.parity.failure_message()[:300] or 'see its report'})")
    return res


def bench_precisions(source: Any, shape: Shape, folder: Path, threads: int = 1, iters: int = 20,
                     max_seconds: float = 60.0, **options: Any) -> list[dict[str, Any]]:
    """Each precision's graph of `source` at `shape`, timed interleaved (see the module docstring).

    `options`: further `ExportSettings` fields for every export (e.g. `atol`, `calibration`).
    """
    options.setdefault("calibration", _calibration(shape, 11, shape[1] == 3))
    settings = ExportSettings.create(source, shape, folder / "model.onnx", precision="int8", bundle=False, **options)
    res = run_pipeline(settings, also=("fp16", "int8-ort-cpu"))
    missing = [v for v in ("fp16", "int8", "int8-ort-cpu") if v not in res.files]
    if missing:  # the precision stage runs on an fp32 graph that passed only
        raise CheckFailed(f"{res.name}: no {missing[0]} graph: the fp32 graph failed its checks "
                          f"({res.parity.failure_message()[:300] or 'see its report'})")
    paths = {v: Path(res.files[v]) for v in ("fp32", "fp16", "int8", "int8-ort-cpu")}
    x = np.random.default_rng(1).random(shape, dtype=np.float32)
    calls = {}
    for variant, path in paths.items():
        session = ort_session(path, threads, ("CPUExecutionProvider",))
        calls[variant] = partial(session.run, None, {session.get_inputs()[0].name: x})
    samples = time_interleaved(calls, 2, iters, max_seconds)
    base = summarize(samples["fp32"]).median_s
    rows = []
    for variant, seconds in samples.items():
        stats = summarize(seconds)
        verdict = res.parities.get((variant, "onnxruntime-cpu"))
        rows.append({"graph": variant, "onnx": str(paths[variant]), "median_ms": stats.median_s * 1e3,
                     "speedup_vs_fp32": base / stats.median_s, "threads": threads,
                     "min_cosine": float(verdict.min_cosine) if verdict is not None else 1.0,
                     "passed": verdict.passed if verdict is not None else res.passed})
    return rows

"""`run_bench`: every module and shape of a `BenchPlan`, each backend measured the same way.

Per module and shape: files first (exports, engines: outside any measurement), then
each backend opened inside an `RssProbe` and run twice (peak memory), then all of them
timed in interleaved rounds (`timing.time_interleaved`), then the eager backends'
tensor-allocation peak and top ops (`memory.torch_alloc_peak`) and, on request,
onnxruntime's per-op profile. The copy bandwidth behind the memory floor is measured
before the first module and after the last; the higher is used.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from attndeploy.bench.backends import BACKENDS, Opened
from attndeploy.bench.floor import copy_bandwidth, floor_bytes
from attndeploy.bench.graphs import ModuleContext, NotApplicable
from attndeploy.bench.memory import RssProbe, rss_probe_unavailable, torch_alloc_peak
from attndeploy.bench.plan import BenchPlan, all_cores
from attndeploy.bench.timing import summarize, time_interleaved
from attndeploy.convert import to_deploy
from attndeploy.errors import first_line
from attndeploy.parity import flatten_outputs, random_input
from attndeploy.registry import create, get_spec
from attndeploy.shapes import Shape, format_shape
from attndeploy.version import __version__
from attndeploy.weights import randomize_

REFERENCE = "eager-reference"
MEMORY_METHOD = ("peak_rss_bytes: rise of the process's peak RSS (VmHWM reset via /proc/self/clear_refs after gc "
                 "and malloc_trim) while the backend is opened and run twice (ORT: session creation included); "
                 "alloc_peak_bytes (eager CPU only): peak bytes of tensors allocated in one forward (torch.profiler "
                 "memory events; input and weights excluded, output included); cuda_peak_bytes (eager CUDA): "
                 "torch.cuda.max_memory_allocated over one call above what was allocated before")


def _context(name: str, plan: BenchPlan, workdir: Path) -> ModuleContext:
    spec = get_spec(name)
    reference = randomize_(create(name), plan.seed).eval()
    deploy = to_deploy(reference).eval()
    return ModuleContext(name, spec, reference, deploy, plan.shapes[name][0], workdir, plan.threads, plan.opset,
                         plan.seed, plan.ort_level)


def _open_all(ctx: ModuleContext, x: Any, plan: BenchPlan, entries: dict[str, dict[str, Any]]) -> dict[str, Opened]:
    opened: dict[str, Opened] = {}
    for name in plan.runnable:
        backend = BACKENDS[name]
        try:
            backend.prepare(ctx, x)
            with RssProbe() as probe:
                handle = backend.open(ctx, x)
                handle.call()
                handle.call()
            opened[name] = handle
            entries[name] = {"status": "ok", "peak_rss_bytes": probe.peak_bytes, **handle.info}
        except NotApplicable as err:
            entries[name] = {"status": "n/a", "reason": str(err)}
        except Exception as err:  # one backend failing on one module must not stop the bench
            entries[name] = {"status": "error", "reason": f"{type(err).__name__}: {first_line(err)}"}
    return opened


def _cuda_peak(call: Any) -> int:
    """Peak bytes the CUDA caching allocator held during one call, above what it held before."""
    import torch

    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    call()
    return int(torch.cuda.max_memory_allocated() - before)


def bench_cell(ctx: ModuleContext, shape: Shape, plan: BenchPlan) -> dict[str, Any]:
    """Measure every runnable backend of `plan` on one module at `shape` (see the module docstring)."""
    x = random_input(shape, plan.seed + 1)
    with torch.no_grad():  # the output sizes, for the memory floor (timing, not a reference)
        outputs = [t.numpy() for t in flatten_outputs(ctx.reference(x.clone())).values()]
    floor = floor_bytes(ctx.deploy, x, outputs)
    entries: dict[str, dict[str, Any]] = {}
    opened = _open_all(ctx, x, plan, entries)
    try:
        samples = time_interleaved({n: h.call for n, h in opened.items()}, plan.warmup, plan.iters, plan.max_seconds)
        for name, seconds in samples.items():
            stats = summarize(seconds)
            entries[name].update({"runs": stats.runs, "median_ms": stats.median_s * 1e3, "p90_ms": stats.p90_s * 1e3,
                                  "min_ms": stats.min_s * 1e3, "mean_ms": stats.mean_s * 1e3,
                                  "stdev_ms": stats.stdev_s * 1e3, "throughput_per_s": shape[0] / stats.median_s})
        for name, handle in opened.items():
            if BACKENDS[name].eager:
                peak, ops = torch_alloc_peak(handle.call)
                entries[name].update({"alloc_peak_bytes": peak, "top_ops": ops})
            elif name.startswith("eager-") and name.endswith("-cuda"):
                entries[name]["cuda_peak_bytes"] = _cuda_peak(handle.call)
        if plan.ort_profile:
            from attndeploy.bench.ortprofile import profile_nodes

            for name in ("onnxruntime", "onnxruntime-reference"):
                if name in opened:
                    entries[name]["profile"] = profile_nodes(Path(entries[name]["onnx"]), x.numpy(), plan.threads,
                                                             level=plan.ort_level)
    finally:
        for handle in opened.values():
            handle.close()
    for name in plan.skipped:
        entries[name] = {"status": "skipped", "reason": plan.skipped[name]}
    return {"module": ctx.name, "input": format_shape(shape), "batch": shape[0], "floor": floor.to_dict(),
            "backends": {n: entries[n] for n in plan.backends}}


def _finish(cell: dict[str, Any], bandwidth: float) -> None:
    """Add the floor time, each backend's multiple of it and of the reference, and the headline ratios."""
    floor_s = cell["floor"]["total"] / bandwidth
    cell["floor"]["seconds"] = floor_s
    cell["floor"]["ms"] = floor_s * 1e3
    entries = cell["backends"]
    ref = entries.get(REFERENCE, {}).get("median_ms")
    for entry in entries.values():
        if "median_ms" in entry:
            entry["x_floor"] = entry["median_ms"] / 1e3 / floor_s
            entry["speedup_vs_reference"] = ref / entry["median_ms"] if ref else None

    def ratio(a: str, b: str, key: str = "median_ms") -> float | None:
        va, vb = entries.get(a, {}).get(key), entries.get(b, {}).get(key)
        return va / vb if va and vb else None

    cell["ratios"] = {
        "deploy_speedup": ratio(REFERENCE, "eager-deploy"),
        "onnxruntime_speedup": ratio(REFERENCE, "onnxruntime"),
        "onnxruntime_vs_reference_graph": ratio("onnxruntime-reference", "onnxruntime"),
        "deploy_alloc_fraction": ratio("eager-deploy", REFERENCE, "alloc_peak_bytes"),
        "deploy_rss_fraction": ratio("eager-deploy", REFERENCE, "peak_rss_bytes"),
    }


def _load() -> list[float] | None:
    """1, 5 and 15 minute load averages (other processes competing for the cores), where the OS tells."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _environment(plan: BenchPlan) -> dict[str, Any]:
    import onnxruntime
    import torch

    return {"attndeploy": __version__, "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
            "python": platform.python_version(), "platform": platform.platform(), "machine": platform.machine(),
            "processor": platform.processor(), "cores": all_cores(), "threads": plan.threads,
            "torch_threads": torch.get_num_threads(), "load_average_end": _load(),
            "backends": {n: {"description": BACKENDS[n].description, "available": n not in plan.skipped,
                             **({"reason": plan.skipped[n]} if n in plan.skipped else {})} for n in plan.backends}}


def run_bench(plan: BenchPlan, progress: bool = True, workdir: Path | None = None) -> dict[str, Any]:
    """Run `plan`; returns the JSON-ready result (every figure; see `bench.report` for the table).

    Figures: ms per call (median, p90, min, mean, stdev over `runs`), throughput in
    images/s (batch / median), `peak_rss_bytes`, `alloc_peak_bytes`, the floor (bytes,
    ms) and `x_floor` (median / floor), `speedup_vs_reference` (reference median / median).
    """
    import torch
    from tqdm import tqdm

    start = time.perf_counter()
    load_start = _load()
    torch.set_num_threads(plan.threads)
    bandwidth_start = copy_bandwidth(plan.copy_mib)
    cells: list[dict[str, Any]] = []
    total = sum(len(plan.shapes[m]) for m in plan.modules)
    with tempfile.TemporaryDirectory(prefix="attndeploy-bench-") as tmp, \
            tqdm(total=total, desc="bench", unit="shape", file=sys.stderr, disable=not progress) as bar:
        root = workdir or Path(tmp)
        for name in plan.modules:
            ctx = _context(name, plan, root)
            for shape in plan.shapes[name]:
                bar.set_postfix_str(f"{name} {format_shape(shape)}")
                cell = bench_cell(ctx, shape, plan)
                if ctx.export_info:
                    cell["deploy_export"] = ctx.export_info
                cells.append(cell)
                bar.update()
    bandwidth_end = copy_bandwidth(plan.copy_mib)
    bandwidth = max(bandwidth_start, bandwidth_end)
    for cell in cells:
        _finish(cell, bandwidth)
    environment = {**_environment(plan), "load_average_start": load_start}
    return {"environment": environment, "settings": plan.settings(),
            "copy_bandwidth_gb_s": {"start": bandwidth_start / 1e9, "end": bandwidth_end / 1e9, "used": bandwidth / 1e9},
            "memory_method": MEMORY_METHOD, "rss_probe": rss_probe_unavailable() or "ok",
            "results": cells, "elapsed_s": time.perf_counter() - start}

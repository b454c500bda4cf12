"""Where onnxruntime spends its time, per op type: its own profiler, aggregated.

onnxruntime writes a Chrome-trace JSON; each node run is an event of category "Node"
named `<node>_kernel_time` with `dur` in microseconds and `args.op_name`. Summed per op
type and divided by the number of runs, that says which ops dominate a module's time
(and, against the wall time per run, how much is spent outside kernels).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from attndeploy.runtimes.onnxruntime_runner import ort_session


def profile_nodes(onnx_path: Path, x: np.ndarray, threads: int, runs: int = 10, top: int = 8,
                  level: str = "all") -> dict[str, Any]:
    """Per-op-type kernel time (ms per run) of `runs` runs of `onnx_path` on `x` after one warm-up.

    Returns {runs, wall_ms_per_run, kernel_ms_per_run, ops: [{op, ms_per_run, share, nodes}]}
    with `share` the fraction of kernel time and `nodes` the node count of that type.
    """
    with tempfile.TemporaryDirectory(prefix="attndeploy-ortprof-") as tmp:
        session = ort_session(onnx_path, threads, ["CPUExecutionProvider"], profile_prefix=str(Path(tmp) / "ort"),
                              level=level)
        feeds = {session.get_inputs()[0].name: x}
        session.run(None, feeds)
        t0 = time.perf_counter()
        for _ in range(runs):
            session.run(None, feeds)
        wall = (time.perf_counter() - t0) / runs
        trace = json.loads(Path(session.end_profiling()).read_text())
    per_op: dict[str, float] = defaultdict(float)
    nodes: dict[str, set[str]] = defaultdict(set)
    for event in trace:
        if event.get("cat") != "Node" or not str(event.get("name", "")).endswith("_kernel_time"):
            continue
        op = event.get("args", {}).get("op_name", "?")
        per_op[op] += float(event.get("dur", 0.0))
        nodes[op].add(event["name"])
    # the warm-up run is in the trace too: runs + 1 runs of every node
    total_us = sum(per_op.values()) / (runs + 1)
    ranked = sorted(per_op.items(), key=lambda kv: kv[1], reverse=True)[:top]
    ops = [{"op": op, "ms_per_run": round(us / (runs + 1) / 1e3, 4),
            "share": round(us / (runs + 1) / total_us, 3) if total_us else 0.0, "nodes": len(nodes[op])}
           for op, us in ranked]
    return {"runs": runs, "wall_ms_per_run": round(wall * 1e3, 4), "kernel_ms_per_run": round(total_us / 1e3, 4),
            "ops": ops}

"""Per-module error of a reduced-precision graph, and the worst module, by PyTorch module path.

Eager's module outputs come from the truth (`Truth.module_runs`: one run with forward hooks
on every module); the graph runs once with every module's boundary tensors exposed (node scopes mapped to
module paths for both exporters). For each module output: cosine, SQNR, max abs and the
99th-percentile relative error against eager, and, where the module's output has its
input's shape, the same for its *change* (output - input): a residual block's output is
dominated by its input (SAGAN's `gamma * attn + x` with a query conv at 1.5x its weights
still scores output cosine 0.99997), its change is the branch's own error. A module's own
SQNR is its change's where it has one, else its output's.

The worst module: the first, in execution order, whose own SQNR falls below the budget's
(`metrics.sqnr_floor`: cosine 0.9999 ~ 37 dB, 0.99 ~ 17 dB) — as localisation names the
first diverging module; if none does, the one with the lowest own SQNR.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import onnx
from torch import nn

from attndeploy.localise.graph import index_graph, run_exposed
from attndeploy.localise.match import event_names
from attndeploy.module_events import EagerRun, Event
from attndeploy.modulepath import class_site
from attndeploy.verdict.metrics import ErrorStats, error_stats, sqnr_floor
from attndeploy.precision.policy import ROOT_LABEL


def _rough_cosine(ref: np.ndarray, got: np.ndarray) -> float:
    """Cosine in float32 (only ranks candidates); -2 for a non-finite or zero side."""
    a, b = ref.ravel(), got.astype(np.float32, copy=False).ravel()
    with np.errstate(all="ignore"):
        value = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
    return value if math.isfinite(value) else -2.0


def _closest(ref: np.ndarray, names: list[str], values: dict[str, np.ndarray]) -> np.ndarray | None:
    """The graph value among `names` with `ref`'s shape that is closest to it (highest cosine)."""
    same = [values[n] for n in names if n in values and np.shape(values[n]) == ref.shape
            and np.issubdtype(values[n].dtype, np.floating)]
    if len(same) < 2:
        return same[0] if same else None
    return max(same, key=lambda v: _rough_cosine(ref, v))


_SITES: dict[type, str] = {}


def _site(cls: type) -> str:
    """``file.py:line`` of `cls`'s class statement (cached: inspect reads the source file)."""
    if cls not in _SITES:
        file, line = class_site(cls)
        _SITES[cls] = f"{os.path.basename(file)}:{line}" if file else ""
    return _SITES[cls]


def _entry(events: list[Event], out: Event) -> Event | None:
    """The "in" event of the call that `out` ends (the last entry into the same path before it)."""
    return next((e for e in reversed(events[:out.index]) if e.kind == "in" and e.path == out.path), None)


def _describe(path: str, module: nn.Module | None, out: ErrorStats, change: ErrorStats | None,
              inp: ErrorStats | None) -> dict[str, Any]:
    cls = type(module).__name__ if module is not None else ""
    own = change if change is not None else out
    return {"path": path or ROOT_LABEL, "class": cls, "site": _site(type(module)) if module is not None else "",
            **{f"output_{k}": v for k, v in out.to_dict().items()},
            **({f"change_{k}": v for k, v in change.to_dict().items()} if change is not None else {}),
            **({"input_cosine": inp.to_dict()["cosine"], "input_sqnr_db": inp.sqnr_db} if inp is not None else {}),
            "own_sqnr_db": own.sqnr_db if own.finite else -math.inf}


def module_errors(run: EagerRun, graph: onnx.ModelProto, x: np.ndarray, input_name: str) -> list[dict[str, Any]]:
    """One record per module call the graph's tensors could be matched to, in execution order.

    `run`: the eager fp32 model's module events on `x`; `graph`: the reduced-precision graph
    onnxruntime runs (for fp16 its strict-fp16 form); `x`: the input (N, C, H, W) float32.
    """
    index = index_graph(graph, run.modules, run.calls)
    names = list(dict.fromkeys(n for e in run.events for n in event_names(e, index)))
    values = run_exposed(index, names, input_name, np.asarray(x, np.float32)).values
    records = []
    for event in run.events:
        if event.kind != "out" or not event.tensors:
            continue
        outs = event_names(event, index)
        got = _closest(event.tensors[0], outs, values) if outs else None
        if got is None:
            continue
        out = error_stats(event.tensors[0], got, exact=False)
        entry = _entry(run.events, event)
        ins = (index.ins.get(event.path, []) if event.path else [input_name])
        inp = change = None
        if entry is not None and entry.tensors or not event.path:
            eager_in = entry.tensors[0] if entry is not None and entry.tensors else np.asarray(x, np.float32)
            got_in = _closest(eager_in, ins, values)
            if got_in is not None:
                inp = error_stats(eager_in, got_in, exact=False)
                if eager_in.shape == event.tensors[0].shape:
                    change = error_stats(event.tensors[0] - eager_in, got - got_in, exact=False)
        records.append(_describe(event.path, run.modules.get(event.path), out, change, inp))
    return records


def worst_module(records: list[dict[str, Any]], min_cosine: float) -> dict[str, Any] | None:
    """The first record whose own SQNR is below the budget's, else the lowest; with a one-line `message`."""
    if not records:
        return None
    floor = sqnr_floor(min_cosine)
    below = [r for r in records if r["own_sqnr_db"] < floor]
    worst = dict(below[0] if below else min(records, key=lambda r: r["own_sqnr_db"]))
    what = "change (output - input)" if "change_cosine" in worst else "output"
    prefix = "change" if "change_cosine" in worst else "output"
    cos = worst.get(f"{prefix}_cosine")
    site = f", {worst['site']}" if worst["site"] else ""
    verdict = f"below the {floor:.0f} dB budget" if below else "the lowest, within budget"
    worst["message"] = (f"`{worst['path']}` ({worst['class']}{site}): own SQNR {worst['own_sqnr_db']:.1f} dB of its "
                        f"{what}, cosine {cos if cos is None else f'{cos:.6f}'}; {verdict}")
    return worst


__all__ = ["module_errors", "worst_module"]

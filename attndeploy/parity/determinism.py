"""The determinism gate: a model whose eager output moves between runs gets no parity verdict.

Eager runs again on the probe's input: `check_repeat` at the same thread count (a fixed
model repeats itself to within 1e-6 of each output's scale), then, once the fp32 noise is
known, `check_threads` at one thread (other summation orders: allowed to move within the
noise tolerance, `noise.channel_atol`). Past that the model is not a fixed truth
(overlapping in-place copies, races, random ops in eval mode such as `F.dropout`, whose
`training` defaults to True). `first_moving_module` then runs it twice with forward hooks
and names the first module, in execution order, whose output differs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from attndeploy.module_events import record_events
from attndeploy.parity.check import Probe
from attndeploy.parity.noise import RELATIVE_FLOOR, Noise, _threads, channel_atol
from attndeploy.parity.outputs import flatten_outputs


def _largest_excess(probe: Probe, outputs: Any, noise: Noise | None) -> float:
    """The largest |difference| past the limit (0.0 when none is): the noise tolerance, else 1e-6 of the scale."""
    worst = 0.0
    limits = channel_atol(noise) if noise is not None else {}
    for name, value in flatten_outputs(outputs).items():
        ref = probe.refs[name].astype(np.float64)
        other = value.detach().cpu().double().numpy()
        diff = np.abs(ref - other)
        same = (ref == other) | (np.isnan(ref) & np.isnan(other))  # NaN where it was NaN is not a move
        diff[same] = 0.0
        diff[np.isnan(diff)] = np.inf
        scale = float(np.abs(ref[np.isfinite(ref)]).max(initial=0.0))
        limit: np.ndarray | float = RELATIVE_FLOOR * scale
        channel = limits.get(name)
        if channel is not None and ref.ndim >= 2 and channel.shape == (ref.shape[1],):
            limit = channel.reshape((1, -1) + (1,) * (ref.ndim - 2))
        past = diff[diff > limit]
        worst = max(worst, float(past.max(initial=0.0)))
    return worst


def _run(threads: int | None, fn: Callable[[], Any]) -> Any:
    """`fn()` at `threads` threads (None: as set)."""
    with _threads(threads) if threads is not None else contextlib.nullcontext():
        return fn()


@torch.no_grad()
def first_moving_module(model: nn.Module, x: torch.Tensor, threads: int | None) -> str:
    """"`s2.mlp` (Mlp) by 1.09": the first module whose output differs between two runs."""
    first = record_events(model, x.clone())
    second = _run(threads, lambda: record_events(model, x.clone()))
    for a, b in zip(first.events, second.events):
        if a.kind != "out":
            continue
        where = f"`{a.path or '<root>'}` ({type(first.modules[a.path]).__name__})"
        for ta, tb in zip(a.tensors, b.tensors):
            if ta.shape != tb.shape:
                return f"{where}: output shape {ta.shape} then {tb.shape}"
            if not np.array_equal(ta, tb):
                scale = float(np.abs(ta).max()) if ta.size else 0.0
                delta = float(np.abs(ta.astype(np.float64) - tb).max())
                if delta > RELATIVE_FLOOR * scale:
                    return f"{where} by {delta:.3g}"
    return "no single module (the difference builds up across modules)"


def _again(model: nn.Module, probe: Probe, threads: int | None) -> Any:
    return _run(threads, lambda: model(torch.from_numpy(probe.x.copy())))


def _verdict(model: nn.Module, probe: Probe, threads: int | None, excess: float) -> str | None:
    if excess == 0:
        return None
    how = "between two runs" if threads is None else "between all threads and one thread"
    return (f"the eager output changes {how} by {excess:.3g} at "
            f"{first_moving_module(model, torch.from_numpy(probe.x.copy()), threads)} — in-place overlapping copies, "
            "a race, or random ops in eval mode (F.dropout's training defaults to True)? No parity verdict on a "
            "moving target")


@torch.no_grad()
def check_repeat(model: nn.Module, probe: Probe) -> str | None:
    """None when a second run at the same thread count repeats `probe.refs`; else where and by how much it moves."""
    return _verdict(model, probe, None, _largest_excess(probe, _again(model, probe, None), None))


@torch.no_grad()
def check_threads(model: nn.Module, probe: Probe, noise: Noise) -> str | None:
    """None when a one-thread run stays within the noise tolerance of `probe.refs` (or there is one thread)."""
    if torch.get_num_threads() <= 1:
        return None
    return _verdict(model, probe, 1, _largest_excess(probe, _again(model, probe, 1), noise))

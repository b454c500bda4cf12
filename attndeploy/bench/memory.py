"""Peak memory on a CPU, two ways.

`RssProbe` (any backend): the rise of the process's peak resident set size while a
backend is set up and run. Linux lets a process reset its own peak (`VmHWM`) by writing
5 to `/proc/self/clear_refs`; the probe frees what it can first (`gc.collect`, glibc's
`malloc_trim`), resets the peak, reads `VmRSS`, and after the block reports
`VmHWM - VmRSS_before` in bytes. That is what `ru_maxrss` would show in a fresh process
per backend, without the process. It counts pages, so it includes the runtime's own
arenas and thread stacks, not only tensors; memory a previous backend freed but the
allocator kept can hide part of a later rise (hence the trim).

`torch_alloc_peak` (eager backends): the peak of bytes held by tensors allocated during
one forward call, from `torch.profiler`'s memory events (the allocator's +/- records,
summed in time order). The input and the weights, allocated before, are not counted;
the output is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from collections.abc import Callable
from pathlib import Path

from attndeploy.quiet import quiet

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def _status_kib(field: str) -> int:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(f"{field} not in {_STATUS}")


def malloc_trim() -> None:
    """Return freed heap memory to the OS where glibc is the allocator (a no-op elsewhere)."""
    name = ctypes.util.find_library("c")
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError, TypeError):
        pass


def rss_probe_unavailable() -> str | None:
    """None when the peak RSS can be reset and read here, else why not."""
    try:
        _status_kib("VmHWM")
        _CLEAR_REFS.write_text("5")
    except OSError as err:
        return f"needs Linux /proc/self/clear_refs and /proc/self/status ({err.__class__.__name__}: {err})"
    return None


class RssProbe:
    """`with RssProbe() as probe: ...` then `probe.peak_bytes` (None where unsupported)."""

    def __init__(self) -> None:
        self.peak_bytes: int | None = None
        self._before_kib = 0
        self._ok = rss_probe_unavailable() is None

    def __enter__(self) -> RssProbe:
        if self._ok:
            gc.collect()
            malloc_trim()
            _CLEAR_REFS.write_text("5")
            self._before_kib = _status_kib("VmRSS")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._ok:
            self.peak_bytes = max(0, _status_kib("VmHWM") - self._before_kib) * 1024


def torch_alloc_peak(call: Callable[[], object], top: int = 5) -> tuple[int, list[dict[str, float | str]]]:
    """Run `call` once under `torch.profiler` (CPU, memory on).

    Returns (peak bytes held by tensors allocated during the call, the `top` ops by
    self CPU time as {op, self_ms, share}).
    """
    import torch
    from torch.profiler import ProfilerActivity, profile

    with quiet(), torch.inference_mode():
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            call()
        records = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                         key=lambda e: e.start_ns())
        held = peak = 0
        for event in records:
            held += event.nbytes()
            peak = max(peak, held)
        averages = [a for a in prof.key_averages() if a.key != "[memory]"]
    total = sum(a.self_cpu_time_total for a in averages) or 1.0
    ranked = sorted(averages, key=lambda a: a.self_cpu_time_total, reverse=True)[:top]
    ops = [{"op": a.key, "self_ms": round(a.self_cpu_time_total / 1e3, 3),
            "share": round(a.self_cpu_time_total / total, 3)} for a in ranked]
    return peak, ops

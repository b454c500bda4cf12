"""Sizes and seeds checked before anything is allocated: a bad number is a one-line `UsageError`, not a crash.

    check_tensor_bytes((1, 64, 100000, 100000), "--input")        # UsageError: 2.56 TB > the limit
    check_seed(2**70, "--seed")                                    # UsageError: 0..2**63-1
    check_module_bytes(lambda: create("se", channels=1 << 20), "se with --kwargs ...")

The limit is half of this machine's physical memory (`memory_limit()`): one tensor or
one module's weights larger than that cannot be worked with (eager, the exporter and
the backend each hold copies). A leaf module: it imports only `attndeploy.errors`
(torch lazily, in `check_module_bytes`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from attndeploy.errors import require

ARGUMENT_INT_MAX = 2**31 - 1  # model arguments are sizes, counts and flags
SEED_MAX = 2**63 - 1  # torch.manual_seed and numpy's generators take 0..2**63-1 everywhere
FALLBACK_MEMORY = 8 << 30  # where the OS does not say how much memory there is


def physical_memory() -> int:
    """Bytes of physical memory (`os.sysconf`), or `FALLBACK_MEMORY` where the OS does not say."""
    try:
        pages, page = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return FALLBACK_MEMORY
    return pages * page if pages > 0 and page > 0 else FALLBACK_MEMORY


def memory_limit() -> int:
    """The most bytes one tensor (or one module's weights) may take: half of `physical_memory()`."""
    return physical_memory() // 2


def human_bytes(n: float) -> str:
    """`1536` -> ``"1.5 KiB"``."""
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    i = 0
    while abs(n) >= 1024 and i < len(units) - 1:
        n /= 1024
        i += 1
    return f"{n:.0f} B" if i == 0 else f"{n:.1f} {units[i]}"


def check_bytes(nbytes: int, what: str) -> int:
    """`UsageError` when `nbytes` (of the thing called `what`) exceeds `memory_limit()`; returns `nbytes`."""
    limit = memory_limit()
    require(nbytes <= limit, f"{what} must fit in half of this machine's memory "
            f"({human_bytes(physical_memory())} physical RAM)", f"at most {human_bytes(limit)}",
            f"{human_bytes(nbytes)} ({nbytes} bytes)")
    return nbytes


def check_tensor_bytes(shape: Sequence[int], what: str, itemsize: int = 4) -> int:
    """The bytes of a dense tensor of `shape` (`itemsize` bytes per element, float32 by default), checked.

    `what` names it in the error (e.g. ``"--input 1x64x100000x100000"``). Returns the bytes.
    """
    return check_bytes(math.prod(int(d) for d in shape) * itemsize, what)


def check_seed(seed: Any, what: str = "--seed") -> int:
    """`seed` if it is an int in 0..2**63-1 (what torch and numpy accept), else `UsageError` naming `what`."""
    require(isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed <= SEED_MAX,
            f"{what} must be an integer in 0..2**63-1", f"0 <= seed <= {SEED_MAX}", repr(seed))
    return seed


def parse_seed(text: str) -> int:
    """An argparse converter: ``"7"`` -> 7, checked with `check_seed`."""
    value = text.strip()
    require(value.isascii() and value.isdigit() and len(value) <= 19, "--seed must be an integer in 0..2**63-1",
            f"0 <= seed <= {SEED_MAX}", repr(text))
    return check_seed(int(value))


def _check_argument(value: Any, where: str) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            _check_argument(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_argument(item, f"{where}[{i}]")
    elif isinstance(value, float):
        require(math.isfinite(value), f"model argument {where!r} must be a finite number", "a finite number",
                repr(value))
    elif isinstance(value, int) and not isinstance(value, bool):
        require(abs(value) <= ARGUMENT_INT_MAX, f"model argument {where!r} must be an integer in a sane range",
                "|value| <= 2**31-1", value)


def check_model_arguments(kwargs: Mapping[str, Any]) -> None:
    """Constructor / factory arguments (``--kwargs``, a recipe's, the Python API's): every float finite and
    every int within +-(2**31-1), through nested lists and dicts; `UsageError` naming the argument."""
    for key, value in kwargs.items():
        _check_argument(value, str(key))


def module_bytes(build: Callable[[], Any]) -> int | None:
    """Parameter + buffer bytes of the module `build()` returns, built on torch's meta device (nothing allocated).

    None when the module cannot be built there (its constructor computes on values, or
    fails for another reason the real build will report).
    """
    import torch

    try:
        with torch.device("meta"):
            module = build()
        tensors = [*module.parameters(), *module.buffers()]
        return sum(t.numel() * t.element_size() for t in tensors)
    except Exception:  # the real construction reports its own error
        return None


def check_module_bytes(build: Callable[[], Any], what: str) -> int | None:
    """`UsageError` when the weights of `build()`'s module would exceed `memory_limit()` (see `module_bytes`).

    `build` is called once under ``torch.device("meta")``; it must not have side effects
    beyond constructing the module (registry constructors; not arbitrary user factories).
    Returns the bytes, or None when the estimate was skipped.
    """
    nbytes = module_bytes(build)
    if nbytes is not None:
        check_bytes(nbytes, f"the weights of {what}")
    return nbytes

"""Checking what a caller feeds a runner against the model's inputs: names, dtypes, ranks, static dims."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from attndeploy.errors import require
from attndeploy.shapes import format_shape
from attndeploy.tensorrt.profiles import InputProfile, check_in_profile


@dataclass(frozen=True)
class IOSpec:
    """One engine I/O tensor: `shape` has -1 for dynamic dims; `profile` is set for inputs."""

    name: str
    is_input: bool
    dtype: str
    shape: tuple[int, ...]
    profile: InputProfile | None = None


def validate_feeds(feeds: Mapping[str, Any], specs: Sequence[IOSpec]) -> dict[str, np.ndarray]:
    """The feeds as contiguous numpy arrays; `UsageError` for a missing or unknown name, a wrong dtype,
    a wrong rank, a static dim that differs, or a shape outside the optimization profile."""
    inputs = [s for s in specs if s.is_input]
    names = [s.name for s in inputs]
    missing = [n for n in names if n not in feeds]
    unknown = [n for n in feeds if n not in names]
    require(not missing and not unknown, "feeds must name exactly the model's inputs", ", ".join(names),
            f"{', '.join(map(str, feeds))}" + (f" (missing {missing})" if missing else "")
            + (f" (unknown {unknown})" if unknown else ""))
    arrays: dict[str, np.ndarray] = {}
    for spec in inputs:
        value = feeds[spec.name]
        array = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
        require(array.dtype.name == spec.dtype, f"input {spec.name!r} must have the model's dtype", spec.dtype,
                array.dtype.name, f"cast it with .astype(np.{spec.dtype})" if spec.dtype != "bool" else "")
        require(array.ndim == len(spec.shape), f"input {spec.name!r} must have the model's rank",
                f"rank {len(spec.shape)}", f"rank {array.ndim} {format_shape(array.shape)}")
        for axis, (want, got) in enumerate(zip(spec.shape, array.shape)):
            require(want == -1 or want == got, f"input {spec.name!r} dim {axis} is static in the model", want,
                    f"{got} in {format_shape(array.shape)}")
        if spec.profile is not None:
            check_in_profile(spec.name, array.shape, spec.profile)
        arrays[spec.name] = np.ascontiguousarray(array)
    return arrays

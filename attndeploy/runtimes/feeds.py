"""Checking what a caller feeds a runner against the model's inputs: names, dtypes, ranks, static dims, profiles."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from attndeploy.errors import require
from attndeploy.shapes import Shape, format_shape


@dataclass(frozen=True)
class InputProfile:
    """min / opt / max of one input; every shape has the input's rank."""

    name: str
    min: Shape
    opt: Shape
    max: Shape

    def contains(self, shape: Sequence[int]) -> bool:
        return len(shape) == len(self.min) and all(lo <= d <= hi for lo, d, hi in zip(self.min, shape, self.max))

    def to_dict(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


@dataclass(frozen=True)
class IOSpec:
    """One model input or output: `shape` has -1 for dynamic dims (None: any rank, as eager PyTorch takes);
    `profile` is set for inputs of a TensorRT engine."""

    name: str
    is_input: bool
    dtype: str
    shape: tuple[int, ...] | None
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
        wanted = spec.shape if spec.shape is not None else tuple(-1 for _ in array.shape)
        require(array.ndim == len(wanted), f"input {spec.name!r} must have the model's rank",
                f"rank {len(wanted)}", f"rank {array.ndim} {format_shape(array.shape)}")
        for axis, (want, got) in enumerate(zip(wanted, array.shape)):
            require(want == -1 or want == got, f"input {spec.name!r} dim {axis} is static in the model", want,
                    f"{got} in {format_shape(array.shape)}")
        if spec.profile is not None:
            check_in_profile(spec.name, array.shape, spec.profile)
        arrays[spec.name] = np.ascontiguousarray(array)
    return arrays


def check_in_profile(name: str, shape: Sequence[int], profile: InputProfile) -> None:
    """`UsageError` unless `shape` lies inside `profile` (the engine cannot run it otherwise)."""
    require(len(shape) == len(profile.min), f"input {name!r} must have the engine's rank",
            f"rank {len(profile.min)}", f"rank {len(shape)} {format_shape(tuple(shape))}")
    outside = [f"dim {i}: {d} not in [{lo}, {hi}]" for i, (lo, d, hi) in enumerate(zip(profile.min, shape, profile.max))
               if not lo <= d <= hi]
    require(not outside, f"input {name!r} must lie inside the engine's optimization profile",
            f"{format_shape(profile.min)} .. {format_shape(profile.max)}",
            f"{format_shape(tuple(shape))} ({'; '.join(outside)})", "rebuild the engine with a wider --min/--max")

"""Parity inputs like the real ones: image-like for 3-channel inputs, N(0, 1) for feature maps, or the user's data.

    plan = plan_inputs((1, 3, 640, 640), None)      # InputPlan("image", ...): uniform [0, 1)
    x = plan.make((2, 3, 480, 640), seed=7)          # (2, 3, 480, 640) float32, reproducible from the seed

User data (`inputs=` / `--inputs`): a (K, C, H, W) array, a `.npy`, a `.npz` (its first
array), or a folder of images (decoded to RGB in [0, 1] and resized to the example's H, W).
Each parity shape takes samples in turn (batch) and resizes them bilinearly to its H, W.
The same reader serves int8 calibration data (`plan_inputs(..., calibration=...)`, read in
the prepare stage with the parity data). Files are read with bounds (`attndeploy.reading`);
data that is empty, not numeric, not finite in float32, or of the wrong rank or channels
is a `UsageError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from attndeploy.errors import UsageError, require
from attndeploy.reading import NUMERIC_KINDS, read_array_file, read_image_folder, tensor_values
from attndeploy.shapes import Shape, format_shape


def random_input(shape: Shape, seed: int) -> torch.Tensor:
    """A fresh N(0, 1) float32 input, reproducible from `seed`."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)


def image_like_input(shape: Shape, seed: int) -> torch.Tensor:
    """A fresh uniform [0, 1) float32 input (what an image preprocessed to [0, 1] looks like)."""
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)


def _as_float32(array: np.ndarray, what: str, where: str) -> np.ndarray:
    """`array` as float32: NaN/Inf refused, and values past float32's range (float64 data) named as such."""
    require(array.dtype.kind in NUMERIC_KINDS, f"{what} must hold numbers", "a float or int array",
            f"{where}: dtype {array.dtype}")
    finite = np.isfinite(array)
    if not finite.all():
        nan = int(np.isnan(array).sum())
        raise UsageError(f"{what} must be finite", "no NaN/Inf", f"{where}: {nan} NaN and "
                         f"{int(array.size - finite.sum()) - nan} Inf of {array.size} values")
    with np.errstate(over="ignore"):
        converted = array.astype(np.float32)
    if not np.isfinite(converted).all():
        largest = float(np.abs(array).max())
        raise UsageError(f"{what} must fit in float32 (the model's input dtype)",
                         f"|x| <= {float(np.finfo(np.float32).max):.4g}", f"{where}: |x| up to {largest:.4g} "
                         f"({array.dtype}), which is Inf in float32")
    return converted


def check_samples(array: np.ndarray, example: Shape, what: str, where: str) -> np.ndarray:
    """`array` checked as a batch of samples like the example (rank, channels, no empty dim, finite in float32) and
    returned as a contiguous (K, C, ...) float32 array."""
    require(array.ndim == len(example), f"{what} must be a batch of samples shaped like the example",
            f"rank {len(example)}: (K, {', '.join(map(str, example[1:]))})", f"{where}: shape {array.shape}")
    require(all(d >= 1 for d in array.shape), f"{what} must not be empty", "every dimension >= 1",
            f"{where}: shape {array.shape}")
    require(len(example) < 2 or array.shape[1] == example[1], f"{what} must have the example's channels",
            example[1] if len(example) > 1 else "-", f"{array.shape[1]} in shape {array.shape} ({where})")
    return np.ascontiguousarray(_as_float32(array, what, where))


def load_inputs(value: Any, example: Shape, what: str = "inputs") -> np.ndarray:
    """User data as a (K, C, H, W) float32 array with the example's C (images resized to its H, W), read with bounds
    (`attndeploy.reading`); `UsageError` naming `what` for anything unusable."""
    if isinstance(value, torch.Tensor):
        array, where = tensor_values(value, what), f"a tensor {tuple(value.shape)}"
    elif isinstance(value, np.ndarray):
        array, where = value, f"an array {value.shape}"
    else:
        path = Path(value).expanduser()
        if path.is_dir():
            require(len(example) == 4 and example[1] == 3, f"{what} from images need a 3-channel (N, 3, H, W) input",
                    "an example of shape (N, 3, H, W)", format_shape(example))
            return read_image_folder(path, (example[2], example[3]), what)
        array, where = read_array_file(path, what), str(path)
    return check_samples(array, example, what, where)


def describe_data(value: Any) -> str:
    """Where user data came from, as the report says it: the path, or the array's shape."""
    return str(value) if isinstance(value, (str, Path)) else f"an array {tuple(np.shape(value))}"


@dataclass(frozen=True)
class InputPlan:
    """How parity inputs are made: `kind` "image" (U[0, 1)), "normal" (N(0, 1)) or "data" (the user's); and the int8
    calibration samples (K, C, H, W) float32 at the example's H, W, read and checked with the parity data, before any
    export (None when the run calibrates on nothing of the user's)."""

    kind: str
    data: np.ndarray | None = None
    source: str = ""
    calibration: np.ndarray | None = None
    calibration_source: str = ""

    def make(self, shape: Shape, seed: int) -> torch.Tensor:
        if self.kind == "image":
            return image_like_input(shape, seed)
        if self.kind == "normal" or self.data is None:
            return random_input(shape, seed)
        start = seed % len(self.data)
        picks = [self.data[(start + i) % len(self.data)] for i in range(shape[0])]
        batch = torch.from_numpy(np.stack(picks))
        if len(shape) == 4 and tuple(batch.shape[2:]) != tuple(shape[2:]):
            batch = F.interpolate(batch, size=tuple(shape[2:]), mode="bilinear", align_corners=False)
        return batch.contiguous()

    def calibration_samples(self) -> tuple[np.ndarray, str]:
        """(the calibration samples, where they came from); only for a run that was given calibration data."""
        assert self.calibration is not None, "plan_inputs was given no calibration data"
        return self.calibration, self.calibration_source

    def describe(self) -> str:
        if self.kind == "image":
            return "image-like inputs: uniform [0, 1) (a 3-channel input)"
        if self.kind == "normal":
            return "feature-map inputs: N(0, 1)"
        assert self.data is not None
        return f"your data: {len(self.data)} samples from {self.source} (resized to each parity shape)"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "source": self.source, "samples": None if self.data is None else len(self.data),
                "description": self.describe()}


def _at_example_size(data: np.ndarray, example: Shape) -> np.ndarray:
    """(K, C, H, W) samples resized (bilinear) to the example's H, W."""
    if data.ndim != 4 or tuple(data.shape[2:]) == tuple(example[2:]):
        return data
    return F.interpolate(torch.from_numpy(data), size=tuple(example[2:]), mode="bilinear",
                         align_corners=False).numpy()


def plan_inputs(example: Shape, inputs: Any, calibration: Any = None) -> InputPlan:
    """`inputs` (user data or None) -> the plan; without data, 3 channels mean an image. `calibration` (int8 data or
    None) is read and checked here too, so bad data stops the run before any export."""
    samples = None if calibration is None else _at_example_size(load_inputs(calibration, example, "calibration"),
                                                               example)
    where = "" if calibration is None else describe_data(calibration)
    if inputs is not None:
        return InputPlan("data", load_inputs(inputs, example), describe_data(inputs), samples, where)
    return InputPlan("image" if len(example) == 4 and example[1] == 3 else "normal", None, "", samples, where)

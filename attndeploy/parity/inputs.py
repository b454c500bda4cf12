"""Parity inputs like the real ones: image-like for 3-channel inputs, N(0, 1) for feature maps, or the user's data.

    plan = plan_inputs((1, 3, 640, 640), None)      # InputPlan("image", ...): uniform [0, 1)
    x = plan.make((2, 3, 480, 640), seed=7)          # (2, 3, 480, 640) float32, reproducible from the seed

User data (`inputs=` / `--inputs`): a (K, C, H, W) array, a `.npy`, a `.npz` (its first
array), or a folder of images (decoded to RGB in [0, 1] and resized to the example's H, W).
Each parity shape takes samples in turn (batch) and resizes them bilinearly to its H, W.
The same reader serves int8 calibration data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from attndeploy.errors import UsageError, require
from attndeploy.shapes import Shape, format_shape

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def random_input(shape: Shape, seed: int) -> torch.Tensor:
    """A fresh N(0, 1) float32 input, reproducible from `seed`."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)


def image_like_input(shape: Shape, seed: int) -> torch.Tensor:
    """A fresh uniform [0, 1) float32 input (what an image preprocessed to [0, 1] looks like)."""
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)


def _images(folder: Path, hw: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    require(bool(files), "an input folder must hold images", f"files ending in {', '.join(IMAGE_SUFFIXES)}",
            f"none in {folder}")
    arrays = []
    for path in files:
        try:
            with Image.open(path) as image:
                rgb = image.convert("RGB").resize((hw[1], hw[0]), Image.Resampling.BILINEAR)
        except (OSError, ValueError) as err:
            raise UsageError("every image in the input folder must decode", "a readable image",
                             f"{path}: {err}") from err
        arrays.append(np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1) / 255.0)
    return np.stack(arrays)


def load_inputs(value: Any, example: Shape, what: str = "inputs") -> np.ndarray:
    """User data as a (K, C, H, W) float32 array with the example's C (images resized to its H, W)."""
    if isinstance(value, torch.Tensor):
        array = value.detach().cpu().numpy()
    elif isinstance(value, np.ndarray):
        array = value
    else:
        path = Path(value).expanduser()
        if path.is_dir():
            require(len(example) == 4 and example[1] == 3, f"{what} from images need a 3-channel (N, 3, H, W) input",
                    "an example of shape (N, 3, H, W)", format_shape(example))
            return _images(path, (example[2], example[3]))
        try:
            loaded = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise UsageError(f"{what} must be a .npy/.npz array or an image folder", "a readable array file",
                             f"{path}: {err}") from err
        array = loaded[next(iter(loaded.files))] if isinstance(loaded, np.lib.npyio.NpzFile) else loaded
    require(array.ndim == len(example) and array.shape[0] >= 1, f"{what} must be a batch of samples shaped like "
            "the example", f"rank {len(example)} (K, {', '.join(map(str, example[1:]))})", f"shape {array.shape}")
    require(len(example) < 2 or array.shape[1] == example[1], f"{what} must have the example's channels",
            example[1] if len(example) > 1 else "-", f"{array.shape[1]} in shape {array.shape}")
    require(np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer),
            f"{what} must hold numbers", "a float or int array", str(array.dtype))
    array = array.astype(np.float32)
    require(bool(np.isfinite(array).all()), f"{what} must be finite", "no NaN/Inf", "non-finite values")
    return array


@dataclass(frozen=True)
class InputPlan:
    """How parity inputs are made: `kind` "image" (U[0, 1)), "normal" (N(0, 1)) or "data" (the user's)."""

    kind: str
    data: np.ndarray | None = None
    source: str = ""

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


def plan_inputs(example: Shape, inputs: Any) -> InputPlan:
    """`inputs` (user data or None) -> the plan; without data, 3 channels mean an image."""
    if inputs is not None:
        source = str(inputs) if isinstance(inputs, (str, Path)) else f"an array {tuple(np.shape(inputs))}"
        return InputPlan("data", load_inputs(inputs, example), source)
    return InputPlan("image" if len(example) == 4 and example[1] == 3 else "normal")

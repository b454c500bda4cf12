"""Running eager and a graph on the images ultralytics ships, for a task check.

    images = letterboxed_images((640, 640))          # (2, 3, 640, 640): bus.jpg, zidane.jpg
    check(eager_model, onnx_bytes, "images", "fp32")  # an ImageCheck: both sides run, then check.compare(...)

`ImageCheck` is the adapter-facing form of a task check: its `compare` is a pure function of
eager's outputs, the graph's and eager's float64 outputs on `images()`; calling it runs the
three there (eager once per model object, in chunks of a fixed batch where the graph has one).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from attndeploy.adapters.base import TaskCheck
from attndeploy.errors import first_line

IMAGES = ("bus.jpg", "zidane.jpg")


@functools.lru_cache(maxsize=4)
def letterboxed_images(imgsz: tuple[int, int]) -> np.ndarray:
    """`IMAGES` letterboxed to `imgsz` (H, W) as ultralytics' predictor does: (2, 3, H, W) float32 RGB in [0, 1]."""
    import cv2
    from ultralytics.data.augment import LetterBox
    from ultralytics.utils import ASSETS

    boxer = LetterBox(new_shape=imgsz, auto=False)  # exactly imgsz (a stride matters only with auto=True)
    batch = []
    for name in IMAGES:
        image = cv2.imread(str(Path(ASSETS) / name))
        if image is None:
            raise FileNotFoundError(f"ultralytics' sample image {name} is missing from {ASSETS}")
        boxed: Any = boxer(image=image)  # (H, W, 3) BGR uint8
        batch.append(boxed[..., ::-1].transpose(2, 0, 1))
    return (np.ascontiguousarray(np.stack(batch)).astype(np.float32) / 255.0)


def in_batches(run: Any, images: np.ndarray, batch: int | None) -> list[np.ndarray]:
    """`run(x) -> list of arrays` on `images` (K, ...) in chunks of a model's fixed `batch` (None: all at once; the
    last chunk padded with its last image), the outputs joined again along dim 0 and trimmed to K."""
    if batch is None or batch == len(images):
        return run(images)
    chunks = []
    for start in range(0, len(images), batch):
        chunk = images[start:start + batch]
        pad = np.repeat(chunk[-1:], batch - len(chunk), axis=0)
        chunks.append(run(np.ascontiguousarray(np.concatenate([chunk, pad]))))
    return [np.concatenate(parts)[:len(images)] for parts in zip(*chunks)]


def _flat(outputs: Any) -> list[np.ndarray]:
    """A model's outputs (a tensor, or nested tuples/lists of them) as float32 arrays, in order."""
    if isinstance(outputs, (tuple, list)):
        return [a for o in outputs for a in _flat(o)]
    return [outputs.detach().float().cpu().numpy()] if isinstance(outputs, torch.Tensor) else []


@dataclass
class EagerOnImages:
    """A model's outputs on the images, float32 and float64 (None when its float64 run fails: `fp64_failed`)."""

    model: nn.Module
    fp32: list[np.ndarray]
    fp64: list[np.ndarray] | None
    fp64_failed: str = ""


@torch.no_grad()
def float64_outputs(model: nn.Module, images: np.ndarray, batch: int | None) -> tuple[list[np.ndarray] | None, str]:
    """(a float64 copy of `model`'s outputs on `images`, as float32 arrays, or None, why it failed)."""
    try:
        twin = copy.deepcopy(model).double()
        return in_batches(lambda x: _flat(twin(torch.from_numpy(x).double())), images, batch), ""
    except Exception as err:  # a model with float32-only code: judged without the float64 reference
        return None, f"eager in float64 failed ({first_line(err)}): judged without it"


class ImageCheck:
    """A check on `letterboxed_images(imgsz)`: `compare` is the verdict; calling it runs both sides first.

    `batch`: the batch the model and its graph take when it is fixed (NMS in the graph), None
    when any: the images then go through in chunks of it (`in_batches`).
    """

    name = "task"

    def __init__(self, imgsz: Sequence[int], batch: int | None = None) -> None:
        self.imgsz = (int(imgsz[0]), int(imgsz[1]))
        self.batch = batch
        self._eager: EagerOnImages | None = None

    def images(self) -> np.ndarray:
        return letterboxed_images(self.imgsz)

    @property
    def where(self) -> str:
        return f"{' and '.join(IMAGES)} letterboxed to {self.imgsz[0]}x{self.imgsz[1]}"

    def compare(self, eager: Sequence[np.ndarray], graph: Sequence[np.ndarray], precision: str,
                eager64: Sequence[np.ndarray] | None = None) -> TaskCheck:
        """The verdict from eager's outputs, the graph's, and eager's float64 run (None: not available) on
        `images()`, each in the graph's output order."""
        raise TypeError(f"{type(self).__name__} must define compare")

    @torch.no_grad()
    def eager_outputs(self, eager_model: nn.Module) -> EagerOnImages:
        """`eager_model`'s outputs on `images()` in float32 and float64, run once per model object."""
        if self._eager is None or self._eager.model is not eager_model:
            outputs = in_batches(lambda x: _flat(eager_model(torch.from_numpy(x.copy()))), self.images(), self.batch)
            self._eager = EagerOnImages(eager_model, outputs, *float64_outputs(eager_model, self.images(), self.batch))
        return self._eager

    def __call__(self, eager_model: nn.Module, onnx_bytes: bytes, input_name: str, precision: str) -> TaskCheck:
        from attndeploy.runtimes.onnxruntime_runner import OnnxRuntimeRunner

        with OnnxRuntimeRunner(onnx_bytes) as runner:
            graph = in_batches(lambda x: [np.asarray(v) for v in runner.infer({input_name: x}).values()],
                               self.images(), self.batch)
        eager = self.eager_outputs(eager_model)
        result = self.compare(eager.fp32, graph, precision, eager.fp64)
        if eager.fp64_failed:
            result.details["float64"] = eager.fp64_failed
        return result


__all__ = ["EagerOnImages", "IMAGES", "ImageCheck", "float64_outputs", "in_batches", "letterboxed_images"]

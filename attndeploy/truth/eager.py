"""`EagerModel`: the user's model run for reference, in fp32 and in float64, nowhere else.

    eager = EagerModel(model, plan.make, seed=0)
    out32 = eager.fp32_at((1, 3, 64, 64))        # {flattened name: float32 array}, cached by shape
    out64 = eager.float64(x)                     # the float64 copy on the same input, or None (see `failed64`)

Inputs come from `make_input(shape, seed)` (the parity input plan) and are derived from the
seed and the shape, so a shape probed while learning the shape rule is not run again. Each
run gets its own copy of the input (a model that writes into its input cannot change what
another side is fed). A model that raises raises `EagerFailed` naming the module.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn

from attndeploy.copying import private_copy
from attndeploy.errors import first_line
from attndeploy.module_events import EagerRun, record_events
from attndeploy.modulepath import ModuleStack
from attndeploy.parity.outputs import dropped_outputs, flatten_outputs, to_numpy
from attndeploy.shapes import Shape, format_shape

MakeInput = Callable[[Shape, int], torch.Tensor]


class EagerFailed(RuntimeError):
    """The eager model raised at a shape; the message says where (`` `model.12` (Concat): ...``)."""


def shape_seed(seed: int, shape: Shape) -> int:
    """The input seed for `shape`: the same shape always gets the same input."""
    return seed + zlib.crc32(format_shape(shape).encode()) % 1_000_003


@contextlib.contextmanager
def float64_defaults() -> Iterator[None]:
    """Tensors a forward makes without a dtype follow the float64 model."""
    saved = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(saved)


@contextlib.contextmanager
def threads(count: int) -> Iterator[None]:
    saved = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


class EagerModel:
    """The eager model (eval mode) and, made on first use, its float64 copy."""

    def __init__(self, model: nn.Module, make_input: MakeInput, seed: int = 0) -> None:
        self.model, self.make_input, self.seed = model, make_input, seed
        self.inputs: dict[Shape, np.ndarray] = {}
        self.outputs: dict[Shape, dict[str, np.ndarray]] = {}
        self.dropped: list[str] = []         # outputs that are not tensors (`output1: NoneType dropped ...`)
        self.failed64 = ""                   # why the float64 copy cannot run, once it failed
        self._double: nn.Module | None = None

    def input_at(self, shape: Shape) -> np.ndarray:
        shape = tuple(shape)
        if shape not in self.inputs:
            self.inputs[shape] = self.make_input(shape, shape_seed(self.seed, shape)).numpy().copy()
        return self.inputs[shape]

    @torch.no_grad()
    def fp32(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """The model's tensor outputs on a copy of `x`, flattened and named, float32 (integer dtypes kept)."""
        with ModuleStack(self.model) as stack:
            try:
                out = self.model(torch.from_numpy(x.copy()))
            except Exception as err:  # the model's own error, with where it happened
                where = stack.where()
                raise EagerFailed(f"{format_shape(x.shape)} fails in eager" + (f" at {where}" if where else "")
                                  + f": {first_line(err, 200)}") from err
        self.dropped[:] = dropped_outputs(out)
        return to_numpy(flatten_outputs(out))

    def fp32_at(self, shape: Shape) -> dict[str, np.ndarray]:
        """`fp32` on the generated input of `shape`, once per shape."""
        shape = tuple(shape)
        if shape not in self.outputs:
            self.outputs[shape] = self.fp32(self.input_at(shape))
        return self.outputs[shape]

    def given(self, x: torch.Tensor) -> dict[str, np.ndarray]:
        """The user's own example `x`: from now on the input and outputs at its shape."""
        shape = tuple(x.shape)
        self.inputs[shape] = x.detach().float().cpu().numpy().copy()
        self.outputs[shape] = self.fp32(self.inputs[shape])
        return self.outputs[shape]

    def _float64_model(self) -> nn.Module:
        if self._double is None:
            self._double = private_copy(self.model).double()
        return self._double

    @torch.no_grad()
    def float64(self, x: np.ndarray) -> dict[str, np.ndarray] | None:
        """The float64 copy's outputs on `x` (float64 arrays), or None once it could not run (`failed64` says why)."""
        if self.failed64:
            return None
        try:
            with float64_defaults():
                out = flatten_outputs(self._float64_model()(torch.from_numpy(x.astype(np.float64))))
            return {k: v.detach().cpu().numpy().copy() for k, v in out.items()}
        except Exception as err:  # a model that cannot run in float64 (fixed dtypes, kernels without double)
            self.failed64 = f"float64 run failed ({first_line(err, 120, with_type=True)})"
            return None

    @torch.no_grad()
    def other_threads(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """fp32 at another thread count (one; two where this process runs one): other summation orders."""
        with threads(1 if torch.get_num_threads() > 1 else 2):
            return self.fp32(x)

    @torch.no_grad()
    def one_thread(self, x: np.ndarray, nudge: bool = False) -> dict[str, np.ndarray]:
        """fp32 at one thread (other summation orders); `nudge` moves every input element by one float32 ulp."""
        if nudge:
            x = np.nextafter(x, np.where(np.arange(x.size).reshape(x.shape) % 2 == 0, np.inf, -np.inf)
                             ).astype(np.float32)
        with threads(1):
            return self.fp32(x)

    def events(self, x: np.ndarray, double: bool = False) -> EagerRun:
        """Every module's inputs and outputs on `x`, in the fp32 model or (`double`) its float64 copy."""
        if not double:
            return record_events(self.model, torch.from_numpy(x.copy()))
        with float64_defaults():
            return record_events(self._float64_model(), torch.from_numpy(x.astype(np.float64)))


__all__ = ["EagerFailed", "EagerModel", "MakeInput", "float64_defaults", "shape_seed", "threads"]

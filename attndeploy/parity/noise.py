"""The size of fp32 noise for *this* model, so a difference is called a bug only past it.

Two fp32 implementations of the same model (eager PyTorch, onnxruntime) differ by rounding
even when both are right; how much depends on the model and the input (a detector's box
outputs in the hundreds of pixels differ by ~1e-4, a feature map of unit scale by ~1e-7, a
channel a ReLU zeroed at one input and not at another by nothing, then something).
`NoiseMeter.measure(probe)` runs the model in float64 on that probe's input and takes
|eager64 - eager32| per output channel (axis 1): eager fp32's own rounding error there, at
every parity input (a noise measured at one input does not bound another's). Where the
model cannot run in float64, two legitimate fp32 runs (all threads vs one thread: other
summation orders) give a lower bound instead.

`channel_atol(noise)`: the per-channel tolerance `max(NOISE_MULTIPLE * noise, RELATIVE_FLOOR *
scale, ABSOLUTE_FLOOR)` (noise pooled across an output's channels from below), `scale` the
channel's largest |value| at that input: relative to the output's scale, so a class-score
channel in [0, 1] is held to 1e-5 while a box channel in the hundreds of pixels gets ~1e-2.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from attndeploy.copying import private_copy
from attndeploy.errors import first_line
from attndeploy.parity.check import Probe
from attndeploy.parity.outputs import flatten_outputs
from attndeploy.shapes import format_shape

# A backend's fp32 error against eager fp32 is about its own rounding error plus eager's, and more where it implements
# an op otherwise (attention's Softmax, approximated activations). Measured (onnxruntime vs eager32 per channel, against
# max(pooled float64 noise, the floors) at the same input): at most 7.6x over the registry at opsets 13 and 17, its 14
# modules in a host network, 8 blog-style modules and torchvision's resnet18, and up to 13.6x on ultralytics' YOLO12n
# (area attention; YOLO11n 10.7x, YOLOv8n 1.1x) at 640x640. NOISE_MULTIPLE leaves over 2x above the worst.
NOISE_MULTIPLE = 32.0
RELATIVE_FLOOR = 1e-6   # ~8 float32 ulps of the channel's largest value: where fp64 and fp32 agree exactly
# Activations onnxruntime approximates (its MLAS Sigmoid is off by up to 1.3e-7 *absolute*, measured on YOLOv8n's
# class scores of ~1e-5) err in absolute terms: no channel is held below the registry's tightest measured atol.
ABSOLUTE_FLOOR = 1e-5
POOL_QUANTILE = 0.25    # a channel's noise is at least its output's lower-quartile channel noise


@dataclass
class Noise:
    """Per output: the largest |reference - fp32| per channel (axis 1; one value for rank < 2)."""

    method: str                                    # "float64", "threads", or "none" (nothing to compare)
    channels: dict[str, np.ndarray] = field(default_factory=dict)
    scales: dict[str, np.ndarray] = field(default_factory=dict)   # largest |fp32 value| per channel
    note: str = ""

    def largest(self, name: str) -> float:
        values = self.channels.get(name)
        return float(values.max()) if values is not None and values.size else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "note": self.note,
                "max_abs": {name: self.largest(name) for name in self.channels}}


def channel_max(values: np.ndarray) -> np.ndarray:
    """The largest finite |value| per channel (axis 1); one value for rank < 2."""
    magnitude = np.abs(values.astype(np.float64))
    magnitude[~np.isfinite(magnitude)] = 0.0  # non-finite values are reported by the comparison itself
    if magnitude.ndim < 2:
        return np.array([magnitude.max(initial=0.0)])
    return np.moveaxis(magnitude, 1, 0).reshape(magnitude.shape[1], -1).max(axis=1, initial=0.0)


def _per_channel(ref: np.ndarray, other: np.ndarray) -> np.ndarray:
    return channel_max(ref.astype(np.float64) - other.astype(np.float64))


@contextlib.contextmanager
def _float64_defaults() -> Iterator[None]:
    saved = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # tensors the model makes in forward follow the model's dtype
    try:
        yield
    finally:
        torch.set_default_dtype(saved)


@contextlib.contextmanager
def _threads(count: int) -> Iterator[None]:
    saved = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def _compare(probe: Probe, outputs: Any) -> dict[str, np.ndarray]:
    flat = flatten_outputs(outputs)
    if list(flat) != list(probe.refs) or any(tuple(v.shape) != probe.refs[k].shape for k, v in flat.items()):
        raise ValueError("the second run returned other outputs")
    return {k: _per_channel(probe.refs[k], v.detach().cpu().double().numpy()) for k, v in flat.items()}


class NoiseMeter:
    """The fp32 noise of one model at any probe (cached by shape); the float64 copy is made once, on first use."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self._double: torch.nn.Module | None = None
        self._double_failed = ""
        self._done: dict[tuple[int, ...], Noise] = {}

    def _float64(self, x: torch.Tensor, probe: Probe) -> dict[str, np.ndarray]:
        with _float64_defaults():
            if self._double is None:
                self._double = private_copy(self.model).double()
            return _compare(probe, self._double(x.double()))

    @torch.no_grad()
    def measure(self, probe: Probe) -> Noise:
        """fp32 noise at `probe` (its refs are the fp32 eager outputs at all threads)."""
        if probe.shape in self._done:
            return self._done[probe.shape]
        x = torch.from_numpy(probe.x.copy())
        scales = {name: channel_max(ref) for name, ref in probe.refs.items()}
        noise = None
        if not self._double_failed:
            try:
                noise = Noise("float64", self._float64(x, probe), scales)
            except Exception as err:  # a model that cannot run in float64 (fixed dtypes, kernels without double)
                self._double_failed = f"float64 run failed ({first_line(err, 120, with_type=True)})"
        if noise is None and torch.get_num_threads() > 1:
            with contextlib.suppress(Exception), _threads(1):
                noise = Noise("threads", _compare(probe, self.model(x.clone())), scales,
                              self._double_failed + "; fp32 at 1 vs all threads instead")
        if noise is None:
            noise = Noise("none", {}, scales, self._double_failed + "; no second fp32 run to compare with")
        self._done[probe.shape] = noise
        return noise

    def summary(self) -> dict[str, Any]:
        """Method and, per output, the largest noise over every probe measured."""
        noises = list(self._done.values())
        names = {name for n in noises for name in n.channels}
        return {"method": noises[0].method if noises else "none", "note": noises[0].note if noises else "",
                "shapes": [format_shape(s) for s in self._done],
                "max_abs": {name: max(n.largest(name) for n in noises) for name in sorted(names)}}


def channel_atol(noise: Noise) -> dict[str, np.ndarray]:
    """Per output, per channel: max(NOISE_MULTIPLE * pooled noise, RELATIVE_FLOOR * scale, ABSOLUTE_FLOOR).

    A channel's noise is one sample of the rounding error (it can be accidentally exact, or
    all zero where a ReLU zeroed the channel at this input); the pooled noise is at least the
    `POOL_QUANTILE` noise of the output's non-zero channels, which channels fed by the same
    computation share (a detector's class-score channels, not its box channels).
    """
    atol = {}
    for name, values in noise.channels.items():
        alive = values[noise.scales[name] > 0]  # a channel a ReLU zeroed here tells nothing about rounding
        pooled = np.maximum(values, np.quantile(alive, POOL_QUANTILE, method="lower")) if alive.size > 1 else values
        atol[name] = np.maximum(np.maximum(NOISE_MULTIPLE * pooled, RELATIVE_FLOOR * noise.scales[name]), ABSOLUTE_FLOOR)
    return atol

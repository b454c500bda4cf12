"""The fp32 rule, anchored on the float64 truth: a graph is as far from float64 as eager fp32 is, give or take.

Two fp32 implementations of the same math are each about as far from the float64 result as
the other. Per output channel `c` (axis 1; an output of rank < 2 is one channel), at one probe:

    G_c = max |graph - float64|        the candidate's own distance to the truth
    E_c = max |eager32 - float64|      eager fp32's distance (its rounding, at this input)
    S_c = max |float64|                the channel's scale

    basis_c = max(E_c, POOL(E), SCALE_ULPS * eps32 * S_c, ABSOLUTE_ULPS * eps32 * U_c)
    the channel passes when G_c <= FACTOR * basis_c (every element of it), and nothing is NaN/Inf.

`POOL(E)`, for outputs with fewer than `POOL_BELOW` elements per channel (a classifier's
logits: one number per image): the `POOL_QUANTILE` of E over the output's live channels
(S_c > 0). One channel's eager error is then a single sample of the rounding (eager can be
exact by chance where the graph is not), so its basis is at least the typical channel's;
with many elements per channel its own maximum is a stable statistic and is used alone (a
detector's score channels are not held to its box channels' noise). The scale floor stands
in for eager errors of exactly zero (a channel eager computes exactly). `U_c`: activations
onnxruntime approximates err relative to the function's unit range, not the value (its
Sigmoid is off by up to ~1.3e-7 absolute on scores of 1e-5, and a gate that small, times its
input, carries that absolute error into the output), so a channel is held to one ulp of 1
at least where its values all lie in [0, 1] (a probability), else to one ulp of the output's
typical channel scale (the `POOL_QUANTILE` of S_c, at most 1).

FACTOR, measured: the largest G_c / basis_c (the `ratio` every report.json holds per output)
of a correct onnxruntime CPU graph over 100 clean exports at every parity probe — the 13 registry modules (seeds 0, 1 at opset 17, seed 0 at 18), 4 host
networks (2 seeds), torchvision regnet_y_400mf / efficientnet_b0 / mobilenet_v3_small (5
trained-like BatchNorm draws each), segmentation_models_pytorch's Unet(resnet18, scSE) (5
draws), the non-local block on inputs x100 (3 draws), and YOLOv8n+CBAM, YOLO11n, YOLO12n,
YOLO26n, YOLOv10n (5 random-weight draws each) and YOLOv8n (2) — is 20.2 (YOLO26n, a class-score channel: onnxruntime's
approximated SiLU, stacked over the network, leaves its scores up to ~20x farther from float64
than eager's); 13.6 for YOLO12n, at most 5.0 over the registry and 7.7 over the
classifiers. FACTOR = 32 leaves 1.6x above the worst. A later 48 exports (draws 0-3 of the
torchvision classifiers, the U-Net, YOLO26n and YOLOv10n, each by the API and the CLI)
reached 26.2 (YOLO26n draw 3, API), 24.5 for YOLOv10n: 1.2x below FACTOR, a thinner margin.

A planted error of relative size d in channel c is caught when d * S_c > FACTOR * basis_c;
`attndeploy.detection_power` measures the smallest such d per model.

Where eager fp32 is itself far from float64 (E_c > ILL_CONDITIONED * S_c: a saturated
softmax, an ill-conditioned BatchNorm chain) the input is ill-conditioned: the report says
so, and the rule above still judges against float64. There one eager run is a poor sample
of fp32's rounding: another summation order lands somewhere else entirely (draw 4 of
tests.holdout_models:unet_scse at 1x3x44x161, outputs up to 1.6e9: eager at two threads
is 1.7e6 from float64, at one thread 1.4e8, 84x farther; the gate refused that correct
model as "moving"). So at an ill-conditioned probe the truth also runs eager at another
thread count (one; two in a one-thread process), and E_c is the larger of the two runs'
distances (`spread`): the basis is then the spread of two legitimate fp32 implementations,
not one draw of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPS32 = float(np.finfo(np.float32).eps)  # 2**-23
FACTOR = 32.0
SCALE_ULPS = 1.0
ABSOLUTE_ULPS = 1.0
POOL_QUANTILE = 0.5
POOL_BELOW = 64
ILL_CONDITIONED = 1e-3


def by_channel(values: np.ndarray) -> np.ndarray:
    """`values` as (channels, elements) float64: axis 1 first; rank < 2 is one channel."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim < 2:
        return array.reshape(1, -1)
    return np.moveaxis(array, 1, 0).reshape(array.shape[1], -1)


def channel_max(values: np.ndarray) -> np.ndarray:
    """The largest finite |value| per channel (axis 1); non-finite values count as 0."""
    magnitude = np.abs(by_channel(values))
    magnitude[~np.isfinite(magnitude)] = 0.0
    return magnitude.max(axis=1, initial=0.0)


@dataclass
class Distances:
    """Per channel at one probe: the candidate's distance to float64 (`graph`), eager fp32's (`eager`), the
    channel's scale, and the limit the rule sets (`FACTOR * basis`)."""

    graph: np.ndarray
    eager: np.ndarray
    scale: np.ndarray
    basis: np.ndarray
    factor: float

    @property
    def limit(self) -> np.ndarray:
        return self.factor * self.basis

    @property
    def ratio(self) -> np.ndarray:
        """G_c / basis_c per channel (the rule passes a channel at <= factor)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.basis > 0, self.graph / np.maximum(self.basis, 1e-300),
                            np.where(self.graph > 0, np.inf, 0.0))

    def ill_conditioned(self) -> bool:
        """Eager fp32 is itself far from float64 in some channel."""
        return _far(self.eager, self.scale)


def basis(eager: np.ndarray, scale: np.ndarray, unit: np.ndarray, elements: int = 1) -> np.ndarray:
    """Per channel: max(E_c, POOL(E), SCALE_ULPS eps32 S_c, ABSOLUTE_ULPS eps32 U_c) (see the module docstring);
    `unit`: 1 where the channel's values all lie in [0, 1], else 0."""
    live = scale > 0
    few = elements < POOL_BELOW
    pooled = float(np.quantile(eager[live], POOL_QUANTILE, method="lower")) if few and live.sum() > 1 else 0.0
    typical = min(1.0, float(np.quantile(scale[live], POOL_QUANTILE, method="lower"))) if live.any() else 0.0
    floor = np.maximum(SCALE_ULPS * EPS32 * scale, ABSOLUTE_ULPS * EPS32 * np.maximum(unit, typical))
    return np.maximum(np.maximum(eager, pooled), floor)


def eager_distance(reference: np.ndarray, eager: np.ndarray) -> np.ndarray:
    """E_c: max |eager - reference| per channel (a non-finite eager value is reported on its own, not as noise)."""
    with np.errstate(invalid="ignore", over="ignore"):
        e = np.abs(by_channel(eager) - by_channel(reference))
    e[~np.isfinite(e)] = 0.0
    return e.max(axis=1, initial=0.0)


def ill_conditioned(reference: np.ndarray, eager: np.ndarray) -> bool:
    """Eager fp32 is far from float64 in some channel of this output (as `Distances.ill_conditioned`)."""
    return _far(eager_distance(reference, eager), channel_max(reference))


def _far(eager: np.ndarray, scale: np.ndarray) -> bool:
    """E_c > ILL_CONDITIONED * S_c in some channel."""
    return bool(np.any(eager > ILL_CONDITIONED * scale))


def distances(reference: np.ndarray, eager: np.ndarray, got: np.ndarray, factor: float = FACTOR,
              spread: np.ndarray | None = None) -> Distances:
    """The rule's quantities for one output at one probe; `reference` float64, `eager` and `got` of its shape.

    `spread`: per channel, the distance of another fp32 run of eager to `reference` (another thread count, made
    where the input is ill-conditioned); E_c is then the larger of the two.
    """
    ref = by_channel(reference)
    with np.errstate(invalid="ignore", over="ignore"):
        g = np.abs(by_channel(got) - ref)
    g[~np.isfinite(g)] = np.inf
    scale = channel_max(reference)
    with np.errstate(invalid="ignore"):
        unit = ((np.nan_to_num(ref, nan=-1.0).min(axis=1, initial=0.0) >= 0) & (scale <= 1)).astype(np.float64)
    eager_max = eager_distance(reference, eager)
    if spread is not None:
        eager_max = np.maximum(eager_max, spread)
    return Distances(g.max(axis=1, initial=0.0), eager_max, scale, basis(eager_max, scale, unit, ref.shape[1]),
                     factor)


__all__ = ["ABSOLUTE_ULPS", "EPS32", "FACTOR", "ILL_CONDITIONED", "POOL_QUANTILE", "SCALE_ULPS", "Distances",
           "basis", "by_channel", "channel_max", "distances", "eager_distance", "ill_conditioned"]

"""Detection power, measured: the smallest bug planted in the exported graph alone that the verdict catches.

    report = detection_power(graph_bytes, truth, Budget.float64(), sizes=(1e-2, 1e-3, 1e-4, 1e-5))
    report.smallest        # 1e-05: the smallest relative error in one output channel the judge rejects
    report.noise_limit     # the rule's own bound for that channel (FACTOR x eager's distance to float64 / scale)

The bug: one output channel (axis 1, `channel` of output `output`) scaled by 1 + d after the
graph computed it (`plant_channel_scale`), eager untouched; each size is judged by the same
`attndeploy.verdict.judge` against the same truth as the clean graph. A size is detected
when its verdict fails; the smallest is the smallest size at which it and every larger size
fail. Where the model's own fp32 noise is large (eager fp32 far from float64 in that channel),
`noise_limit` says which sizes no fp32 rule can tell from rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from attndeploy.verdict import Budget, TruthData, Verdict, judge
from attndeploy.verdict.rule import distances

SIZES = (1e-2, 1e-3, 1e-4, 1e-5)


def plant_channel_scale(proto: onnx.ModelProto, output: int, channel: int, d: float, channels: int,
                        rank: int) -> onnx.ModelProto:
    """A copy of `proto` whose graph output number `output` (`channels` channels on axis 1, of `rank`) has channel
    `channel` multiplied by 1 + d."""
    planted = onnx.ModelProto()
    planted.CopyFrom(proto)
    graph = planted.graph
    name = graph.output[output].name
    raw = f"{name}__before_planted_bug"
    for node in graph.node:
        node.output[:] = [raw if o == name else o for o in node.output]
        node.input[:] = [raw if i == name else i for i in node.input]
    scale = np.ones((1, channels) + (1,) * max(rank - 2, 0), np.float32)
    scale[0, channel] += np.float32(d)
    if rank < 2:
        scale = scale.reshape(-1)
    graph.initializer.append(numpy_helper.from_array(scale, f"{name}__planted_scale"))
    graph.node.append(helper.make_node("Mul", [raw, f"{name}__planted_scale"], [name], name="planted_bug"))
    return planted


@dataclass
class PowerReport:
    """The planted sizes and whether the judge caught each (`detected[size]`), for one output channel."""

    output: str
    channel: int
    clean_passed: bool
    detected: dict[float, bool] = field(default_factory=dict)
    noise_limit: float = 0.0          # FACTOR x basis / scale of the channel: below it, rounding hides a bug
    eager_noise: float = 0.0          # eager fp32's own relative distance to float64 in the channel

    @property
    def smallest(self) -> float | None:
        """The smallest size detected along with every larger size (None: not even the largest)."""
        found = None
        for size in sorted(self.detected, reverse=True):
            if not self.detected[size]:
                break
            found = size
        return found

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["detected"] = {f"{k:g}": v for k, v in self.detected.items()}
        return {**data, "smallest": self.smallest}


def _noise(truth: TruthData, budget: Budget, output: int, channel: int) -> tuple[float, float]:
    """(the rule's smallest catchable relative size, eager's relative distance to float64) for the channel at the
    probe where it is smallest (one failing probe fails the verdict)."""
    limit, noise = float("inf"), float("inf")
    name = truth.output_names[output]
    for probe in truth.probes:
        eager, reference = probe.eager[name], probe.reference[name]
        dist = distances(reference, eager, eager, budget.factor)
        scale = float(dist.scale[channel]) if dist.scale[channel] > 0 else float("inf")
        if float(dist.limit[channel]) / scale < limit:
            limit, noise = float(dist.limit[channel]) / scale, float(dist.eager[channel]) / scale
    return limit, noise


def detection_power(graph: bytes, truth: TruthData, budget: Budget, sizes: Sequence[float] = SIZES,
                    output: int = 0, channel: int = 0, run: type | None = None) -> PowerReport:
    """Each size planted in `graph` (what onnxruntime runs) and judged on `truth`'s probes (see the module docstring).

    `run`: a `Runner` class over graph bytes (default `attndeploy.runtimes.onnxruntime_runner.OnnxRuntimeRunner`).
    """
    from attndeploy.runtimes.onnxruntime_runner import OnnxRuntimeRunner

    runner_class = run or OnnxRuntimeRunner
    proto = onnx.load_from_string(graph)
    example = truth.probes[0].eager[truth.output_names[output]]
    channels, rank = (example.shape[1] if example.ndim >= 2 else example.size), example.ndim

    def verdict(model: bytes) -> Verdict:
        with runner_class(model) as runner:
            return judge(truth.probes, lambda x: list(runner.infer({truth.input_name: x}).values()),
                         runner.output_names, budget, ("fp32", "planted"), truth.reference)

    report = PowerReport(truth.output_names[output], channel, verdict(graph).passed)
    report.noise_limit, report.eager_noise = _noise(truth, budget, output, channel)
    for size in sorted(sizes, reverse=True):
        planted = plant_channel_scale(proto, output, channel, size, channels, rank)
        report.detected[size] = not verdict(planted.SerializeToString()).passed
    return report


__all__ = ["SIZES", "PowerReport", "detection_power", "plant_channel_scale"]

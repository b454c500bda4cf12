"""Running `torch.onnx.export` with the exporter that can honour the requested opset.

The TorchScript exporter (`dynamo=False`) writes opsets up to 20; the dynamo exporter
writes 18 and above (asked for 17 it writes 18 and only warns). `auto` uses TorchScript
for opset <= 17 and dynamo above, falling back to TorchScript where it can honour the
opset.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from attndeploy.defaults import DYNAMO_MIN_OPSET, EXPORTERS, MAX_OPSET, MIN_OPSET
from attndeploy.errors import require, unknown_name
from attndeploy.fileio import stdout_to_stderr


def plan_exporters(exporter: str, opset: int) -> list[str]:
    """The exporters to try, in order, for `opset`; raises `UsageError` for one that cannot honour it."""
    if exporter not in EXPORTERS:
        raise unknown_name("exporter", exporter, EXPORTERS)
    require(MIN_OPSET <= opset <= MAX_OPSET, "opset must be in the range attndeploy exports and tests",
            f"{MIN_OPSET}..{MAX_OPSET}", opset)
    if exporter == "dynamo":
        require(opset >= DYNAMO_MIN_OPSET, "the dynamo exporter cannot write opsets below 18",
                f"opset >= {DYNAMO_MIN_OPSET} with --exporter dynamo", opset, "use --exporter torchscript or auto")
        return ["dynamo"]
    if exporter == "torchscript":
        return ["torchscript"]
    return ["torchscript"] if opset < DYNAMO_MIN_OPSET else ["dynamo", "torchscript"]


@dataclass(frozen=True)
class GraphSignature:
    """The graph's interface: opset, input name and dynamic axes, output names and their dynamic axes.

    `output_axes[name]` lists an output's dynamic dims (all of them when the name is absent
    and `input_axes` is not empty); `extra` holds further `torch.onnx.export` arguments
    (custom symbolics' opsets, a dynamo translation table).
    """

    opset: int
    input_name: str
    input_axes: tuple[int, ...]
    output_names: tuple[str, ...]
    output_ranks: tuple[int, ...]
    output_axes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def torchscript_axes(self) -> dict[str, dict[int, str]] | None:
        if not self.input_axes:
            return None
        axes = {self.input_name: {a: f"{self.input_name}_dim{a}" for a in self.input_axes}}
        for name, rank in zip(self.output_names, self.output_ranks):
            dims = self.output_axes.get(name, tuple(range(rank)))
            axes[name] = {a: f"{name}_dim{a}" for a in dims}
        return axes


def run_exporter(exporter: str, model: torch.nn.Module, example: torch.Tensor, path: Path,
                 signature: GraphSignature) -> list[str]:
    """Export `model` to `path` with one exporter; returns the warnings it raised (deduplicated; a TracerWarning
    with ` at file.py:line`, the line that branched on a traced value).

    Exporter chatter on stdout goes to stderr so that `--json` output stays one object.
    """
    extra = dict(signature.extra)
    with warnings.catch_warnings(record=True) as caught, stdout_to_stderr():
        warnings.simplefilter("always")
        if exporter == "torchscript":
            torch.onnx.export(model, (example,), str(path), dynamo=False, opset_version=signature.opset,
                              input_names=[signature.input_name], output_names=list(signature.output_names),
                              dynamic_axes=signature.torchscript_axes(), do_constant_folding=True, **extra)
        else:
            dim = torch.export.Dim.DYNAMIC
            shapes = ({a: dim for a in signature.input_axes},) if signature.input_axes else None
            torch.onnx.export(model, (example,), str(path), dynamo=True, opset_version=signature.opset,
                              input_names=[signature.input_name], output_names=list(signature.output_names),
                              dynamic_shapes=shapes, optimize=True, external_data=False, verbose=False, **extra)
    seen: dict[str, None] = {}
    for w in caught:
        text = f"{w.category.__name__}: {str(w.message).splitlines()[0][:200]}"
        if w.category.__name__ == "TracerWarning":  # where user code branched on a traced value
            text += f" at {w.filename}:{w.lineno}"
        if "deprecat" not in text.lower() and "LeafSpec" not in text:
            seen.setdefault(text)
    return list(seen)

"""Running `torch.onnx.export` with the exporter that can honour the requested opset.

The TorchScript exporter (`dynamo=False`) writes opsets up to 20; the dynamo exporter
writes 18 and above (asked for 17 it writes 18 and only warns). `auto` uses TorchScript
for opset <= 17 and dynamo above, falling back to TorchScript where it can honour the
opset.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from attndeploy.errors import require, unknown_name
from attndeploy.fileio import stdout_to_stderr

EXPORTERS = ("auto", "torchscript", "dynamo")
MIN_OPSET, MAX_OPSET = 13, 20
DYNAMO_MIN_OPSET = 18


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


def dynamic_input_axes(rank: int) -> list[int]:
    """Batch, and H and W for 4-D inputs."""
    return [0, 2, 3] if rank == 4 else [0]


def run_exporter(
    exporter: str,
    model: torch.nn.Module,
    example: torch.Tensor,
    path: Path,
    opset: int,
    dynamic: bool,
    input_name: str,
    output_names: Sequence[str],
    output_ranks: Sequence[int],
    extra: dict[str, Any] | None = None,
) -> list[str]:
    """Export `model` to `path` with one exporter; returns the warnings it raised (deduplicated).

    `extra` holds further `torch.onnx.export` arguments (custom symbolics' opsets or
    translation tables). Exporter chatter on stdout goes to stderr so that `--json`
    output stays one object.
    """
    extra = extra or {}
    axes = dynamic_input_axes(example.dim()) if dynamic else []
    with warnings.catch_warnings(record=True) as caught, stdout_to_stderr():
        warnings.simplefilter("always")
        if exporter == "torchscript":
            dynamic_axes = None
            if dynamic:
                dynamic_axes = {input_name: {a: f"{input_name}_dim{a}" for a in axes}}
                for name, rank in zip(output_names, output_ranks):
                    dynamic_axes[name] = {a: f"{name}_dim{a}" for a in range(rank)}
            torch.onnx.export(model, (example,), str(path), dynamo=False, opset_version=opset,
                              input_names=[input_name], output_names=list(output_names),
                              dynamic_axes=dynamic_axes, do_constant_folding=True, **extra)
        else:
            dim = torch.export.Dim.DYNAMIC
            shapes = ({a: dim for a in axes},) if dynamic else None
            torch.onnx.export(model, (example,), str(path), dynamo=True, opset_version=opset,
                              input_names=[input_name], output_names=list(output_names),
                              dynamic_shapes=shapes, optimize=True, external_data=False, verbose=False, **extra)
    seen: dict[str, None] = {}
    for w in caught:
        text = f"{w.category.__name__}: {str(w.message).splitlines()[0][:200]}"
        if "deprecat" not in text.lower() and "LeafSpec" not in text:
            seen.setdefault(text)
    return list(seen)

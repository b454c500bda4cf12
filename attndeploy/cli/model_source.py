"""What `export` and `lint` are given: a registry name, `pkg.module:factory`, a `.py` file, or a recipe."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from attndeploy import sources
from attndeploy.cli.export_options import add_options
from attndeploy.errors import UsageError
from attndeploy.registry import ModuleSpec, list_modules
from attndeploy.shapes import Shape


MODEL_OPTIONS = ("example", "kwargs", "weights", "seed")  # the export options `lint` shares (same flags)


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """`--input`, `--kwargs`, `--weights`, `--seed`, as `attndeploy export` declares them."""
    add_options(p, MODEL_OPTIONS)


@dataclass
class ModelSource:
    """The model to lint, its name, the example shape, and the registry spec when it has one."""

    name: str
    model: nn.Module
    example: Shape
    spec: ModuleSpec | None


def resolve_source(source: str, input_shape: Shape | None, kwargs: dict[str, Any] | None, weights: Path | None,
                   seed: int | None) -> ModelSource:
    """The library's `attndeploy.sources.resolve_source`, plus the example: registry names have a default,
    other sources need `input_shape`. None for `kwargs` / `seed`: not given ({} / 0)."""
    found = sources.resolve_source(source, kwargs or {}, weights, seed or 0)
    spec = found.spec
    if input_shape is None:
        if spec is None:
            raise UsageError(f"--input is required for {source!r} (only registry names have a default)",
                             "--input NxCxHxW", "no --input", f"registry names: {', '.join(list_modules())}")
        input_shape = sources.default_example(spec, found.model)
    elif spec is None:
        sources.check_image_input(found.model, input_shape)
    return ModelSource(found.name, found.model, input_shape, spec)

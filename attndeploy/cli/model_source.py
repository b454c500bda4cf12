"""What `export` and `lint` are given: a registry name, `pkg.module:factory`, a `.py` file, or a recipe."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attndeploy.argparsing import argument_type
from attndeploy.errors import UsageError
from attndeploy.limits import check_model_arguments, parse_seed
from attndeploy.shapes import Shape, parse_shape

if TYPE_CHECKING:  # torch and the registry load in `resolve_source`: `lint MODEL.onnx` runs without torch
    from torch import nn

    from attndeploy.registry import ModuleSpec


class _NotJSON(float):
    """NaN/Infinity/-Infinity as Python's json reads them (they are not JSON); the repr says so in errors."""

    token: str

    def __new__(cls, token: str) -> _NotJSON:
        value = super().__new__(cls, token)
        value.token = token
        return value

    def __repr__(self) -> str:
        return f"{self.token} (not JSON)"


def parse_kwargs(text: str) -> dict[str, Any]:
    """Strict JSON object (no NaN/Infinity), every number finite and every int within +-2**31-1."""
    try:
        value = json.loads(text, parse_constant=_NotJSON)
    except json.JSONDecodeError as err:
        raise UsageError("--kwargs must be a JSON object", 'e.g. {"channels": 32}', f"{text!r} ({err.msg})") from err
    except ValueError as err:  # an integer too long to parse
        raise UsageError("--kwargs must be standard JSON", 'e.g. {"channels": 32}', f"{text!r} ({err})") from err
    if not isinstance(value, dict):
        raise UsageError("--kwargs must be a JSON object", 'e.g. {"channels": 32}', repr(text))
    check_model_arguments(value)
    return value


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", type=argument_type(parse_shape), default=None, metavar="NxCxHxW",
                   help="example input shape (default for registry names: the module's example shape)")
    p.add_argument("--kwargs", type=argument_type(parse_kwargs), default={}, metavar="JSON",
                   help='constructor / factory arguments, e.g. \'{"channels": 32, "reduction": 8}\'')
    p.add_argument("--weights", type=Path, default=None, metavar="FILE",
                   help="a checkpoint (state_dict), loaded with torch.load(weights_only=True)")
    p.add_argument("--seed", type=argument_type(parse_seed), default=0,
                   help="seed of the random weights and parity inputs (0..2**63-1)")


@dataclass
class ModelSource:
    """The model to lint, its name, the example shape, and the registry spec when it has one."""

    name: str
    model: nn.Module
    example: Shape
    spec: ModuleSpec | None


def resolve_source(source: str, input_shape: Shape | None, kwargs: dict[str, Any], weights: Path | None,
                   seed: int) -> ModelSource:
    """The library's `attndeploy.sources.resolve_source`, plus the example: registry names have a default,
    other sources need `input_shape`."""
    from attndeploy import sources
    from attndeploy.registry import list_modules

    found = sources.resolve_source(source, kwargs, weights, seed)
    spec = found.spec
    if input_shape is None:
        if spec is None:
            raise UsageError(f"--input is required for {source!r} (only registry names have a default)",
                             "--input NxCxHxW", "no --input", f"registry names: {', '.join(list_modules())}")
        input_shape = sources.default_example(spec, found.model)
    elif spec is None:
        sources.check_image_input(found.model, input_shape)
    return ModelSource(found.name, found.model, input_shape, spec)

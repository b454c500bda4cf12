"""What a user hands us, resolved to a module: a registry name, `pkg.module:factory`, a `.py` file, or a module.

    source = resolve_source("cbam", kwargs={}, weights=None, seed=0)
    source.name, source.model, source.spec          # "cbam", CBAM(...), ModuleSpec("cbam", ...)

Registry names get random non-zero weights from `seed` (official inits zero some
branches, which would hide a broken one) unless `weights` are given.

Ultralytics models: a model YAML (`yolov8n-cbam.yaml`) is built by ultralytics, with the
classes of `custom_modules` visible to its parser, and gets random weights from `seed`
unless `weights` (a state_dict) are given; a checkpoint (`best.pt`) is a pickle and loads
only with `trust_checkpoint=True` (see `attndeploy.adapters.ultralytics_sources`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from attndeploy.errors import require
from attndeploy.limits import check_module_bytes, check_tensor_bytes
from attndeploy.loading import load_model, load_weights
from attndeploy.registry import all_specs, create, get_spec
from attndeploy.shapes import Shape, format_shape
from attndeploy.source_kind import SourceKind, classify_source
from attndeploy.spec import ModuleSpec
from attndeploy.weights import randomize_


@dataclass
class Source:
    """The model to export, its name and its registry spec (None outside the registry)."""

    name: str
    model: nn.Module
    spec: ModuleSpec | None


def is_registry_name(source: str) -> bool:
    return classify_source(source).kind is SourceKind.REGISTRY


def spec_of(model: nn.Module) -> ModuleSpec | None:
    """The spec whose reference class is exactly `type(model)` (a user's subclass is not ours)."""
    return next((s for s in all_specs() if type(model) is s.reference), None)


def _ultralytics_source(source: str, kwargs: Mapping[str, Any], weights: Path | None, seed: int,
                        custom_modules: Path | None, trust_checkpoint: bool) -> nn.Module:
    from attndeploy.adapters import ultralytics_sources as yolo
    from attndeploy.adapters.ultralytics import check_ultralytics_installed
    from attndeploy.adapters.ultralytics_yaml import check_model_yaml

    require(not kwargs, "--kwargs are for registry names and factories", "no kwargs with a model YAML or checkpoint",
            dict(kwargs))
    if classify_source(source).kind is SourceKind.YAML:
        check_model_yaml(Path(source).expanduser())  # before ultralytics is imported (its first import talks)
    check_ultralytics_installed()
    if classify_source(source).kind is SourceKind.CHECKPOINT:
        model = yolo.load_checkpoint(source, trust_checkpoint, custom_modules)
        return load_weights(model, weights) if weights is not None else model
    model = yolo.build_from_yaml(source, custom_modules)
    return load_weights(model, weights) if weights is not None else yolo.random_weights_(model, seed)


def resolve_source(source: nn.Module | str, kwargs: Mapping[str, Any], weights: Path | None, seed: int,
                   name: str | None = None, *, custom_modules: Path | None = None,
                   trust_checkpoint: bool = False) -> Source:
    """A `Source` for `source` (see the module docstring); `name` overrides the derived name.

    `custom_modules` (a .py file) and `trust_checkpoint` are for model YAMLs and checkpoints.
    """
    if isinstance(source, nn.Module):
        spec = spec_of(source)  # by the module's class: `name` names the files, never another module's spec
        if weights is not None:
            load_weights(source, weights)
        return Source(name or (spec.name if spec else type(source).__name__.lower()), source, spec)
    kind = classify_source(source)
    if kind.kind is SourceKind.REGISTRY:
        spec = get_spec(source)
        check_module_bytes(lambda: create(source, **kwargs), f"{source} with arguments {dict(kwargs)}")
        model = create(source, **kwargs)
        model = load_weights(model, weights) if weights is not None else randomize_(model, seed)
        return Source(name or spec.name, model, spec)
    if kind.kind in (SourceKind.YAML, SourceKind.CHECKPOINT):
        model = _ultralytics_source(source, kwargs, weights, seed, custom_modules, trust_checkpoint)
        return Source(name or kind.label, model, None)
    require(kind.kind is not SourceKind.ONNX, "export takes a PyTorch model", "a registry name, pkg.module:factory, "
            "path/to/file.py[:factory], a model YAML or a checkpoint", source, "an ONNX file is checked with "
            "`attndeploy lint MODEL.onnx` or run with `attndeploy run`")
    return Source(name or kind.label, load_model(source, dict(kwargs), weights), None)


def default_example(spec: ModuleSpec, model: nn.Module) -> Shape:
    """A registry module's example shape, with the channels `model` was built with (`UsageError` past the memory
    limit)."""
    n, c, h, w = spec.example_shape
    shape = (n, int(getattr(model, "channels", c)), h, w)
    check_tensor_bytes(shape, f"{spec.name}'s example input {format_shape(shape)}")
    return shape


def check_image_input(model: nn.Module, shape: Shape) -> None:
    """A model whose first layer is a Conv2d takes a batch (N, C, H, W): a 3-D input would run unbatched.

    (Channels are left to the model's own error: its first registered conv need not be the first it runs.)
    """
    first = next((m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.Conv1d, nn.Conv3d))), None)
    if isinstance(first, nn.Conv2d):
        require(len(shape) == 4, "the input must be (N, C, H, W): the model's first layer is a Conv2d", "rank 4",
                f"rank {len(shape)} {format_shape(shape)}")

"""Stage `prepare`: the model, its private copies, the example input and the eager truth on it.

The user's model is never changed: the truth is a private eval-mode copy
(`attndeploy.copying.private_copy`), and what is exported is a second copy with the deploy
twins swapped in. The output location is checked before any model code runs.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from attndeploy.adapters import adapter_for
from attndeploy.convert import swap_to_deploy
from attndeploy.copying import private_copy
from attndeploy.errors import UsageError, first_line, require
from attndeploy.fileio import check_output_file
from attndeploy.parity.check import EagerRuns
from attndeploy.parity.inputs import plan_inputs
from attndeploy.pipeline.state import PipelineState
from attndeploy.settings import ExportSettings
from attndeploy.settings_checks import source_label
from attndeploy.shapes import Shape, format_shape
from attndeploy.sources import (
    check_image_input,
    default_example,
    resolve_source,
    spec_of,
)
from attndeploy.spec import ModuleSpec
from attndeploy.usercode import calling_user_code


def _expected_name(settings: ExportSettings) -> str:
    """The result's name as far as it is known before loading anything (for the output path check)."""
    if settings.name:
        return settings.name
    if isinstance(settings.source, str):
        return source_label(settings.source)
    spec = spec_of(settings.source)
    return spec.name if spec else type(settings.source).__name__.lower()


def _example_shape(state: PipelineState, spec: ModuleSpec | None, model: nn.Module) -> Shape:
    example = state.settings.example
    if isinstance(example, torch.Tensor):
        return tuple(example.shape)
    if example is None and state.adapter is not None:
        example = state.adapter.example
    if example is None:
        if spec is None:
            raise UsageError("an example input is required for a model outside the registry",
                             "a tensor or a shape (CLI: --input NxCxHxW)", "no example input")
        return default_example(spec, model)
    return tuple(example)


def _truth_at_example(state: PipelineState, shape: Shape) -> dict[str, np.ndarray]:
    """The eager outputs at the example (of `shape`); the example tensor is the settings' one or the first probe's
    input."""
    assert state.eager is not None
    given = state.settings.example
    try:
        with calling_user_code(f"{state.name}'s forward"):
            if isinstance(given, torch.Tensor):
                probe = state.eager.add(given.detach().float().clone())
            else:
                probe = state.eager.probe(shape)
    except UsageError:
        raise
    except Exception as err:
        raise UsageError(f"{state.name} fails in eager mode on the example input", "an input the model accepts",
                         first_line(err)) from err
    state.example = torch.from_numpy(probe.x.copy())
    return probe.refs


def prepare(state: PipelineState) -> None:
    settings = state.settings
    check_output_file(settings.resolved_out_path(_expected_name(settings)))
    given = private_copy(settings.source) if isinstance(settings.source, nn.Module) else settings.source
    source = resolve_source(given, settings.kwargs, settings.weights, settings.seed, settings.name,
                            custom_modules=settings.custom_modules, trust_checkpoint=settings.trust_checkpoint)
    state.name, state.spec = source.name, source.spec
    truth = source.model
    prepared = adapter_for(truth).prepare(truth, settings)
    for note in prepared.notes:
        state.log(f"{prepared.family}: {note}")
    state.adapter, state.input_name, state.output_axes = prepared, prepared.input_name, dict(prepared.output_axes)
    state.name = settings.name or prepared.name or state.name
    state.truth = truth = prepared.model.eval()
    spec = state.spec
    if spec is not None:
        require(settings.opset >= spec.min_opset, f"{state.name} needs ops that exist from opset {spec.min_opset}",
                f"opset >= {spec.min_opset}", settings.opset)
    shape = _example_shape(state, spec, truth)
    if spec is not None:
        spec.check_input_shape(shape, int(getattr(truth, "channels", shape[1])))
    else:
        check_image_input(truth, shape)
    for other in settings.parity_shapes or ():
        require(len(other) == len(shape) and (len(other) < 2 or other[1] == shape[1]),
                "parity_shapes must keep the example's rank and channels", format_shape(shape), format_shape(other))
    state.inputs = plan_inputs(shape, settings.inputs)
    state.eager = EagerRuns(truth, state.inputs.make, settings.seed)
    outputs = _truth_at_example(state, shape)
    require(len(outputs) > 0, f"{state.name} must return at least one tensor", "a tensor (or a tuple/dict of them)",
            "no tensor outputs")
    for note in state.eager.dropped:
        state.notes.append(note)
        state.log(f"{state.name}: {note}")
    names = prepared.output_names or list(outputs)
    require(len(names) == len(outputs), f"{state.name}'s adapter names every output", f"{len(outputs)} names",
            f"{len(names)}: {names}")
    state.output_names = names
    state.output_shapes = {n: tuple(o.shape) for n, o in zip(names, outputs.values())}
    if settings.deploy_twins:
        state.deploy, state.swaps = swap_to_deploy(truth)
        state.log(f"{state.name}: swapped {len(state.swaps)} module(s) for deploy twins")
    else:
        state.deploy = private_copy(truth)  # later eager runs of the truth must not change what is exported

"""Stage `prepare`: the model, its private copies, the example input and the eager outputs on it.

The user's model is never changed: the truth is a private eval-mode copy
(`attndeploy.copying.private_copy`) run only by its `EagerModel`, and what is exported is
a second copy with the deploy twins swapped in. Everything that can be checked without an
export is checked here (`early_checks`): every path the run will write (before any model
code runs, and again once the family has named the model), weights that hold values, the
user's parity and calibration data (read with bounds), and the keep-fp32 patterns against
the model's module paths.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from attndeploy.adapters import adapter_for
from attndeploy.convert import swap_to_deploy
from attndeploy.copying import private_copy
from attndeploy.errors import UsageError, first_line, require
from attndeploy.parity.inputs import plan_inputs
from attndeploy.pipeline.model import PreparedModel
from attndeploy.pipeline.run import Run
from attndeploy.pipeline.stages.early_checks import check_output_paths, require_patterns_can_match, require_values
from attndeploy.settings import ExportSettings
from attndeploy.settings_checks import source_label
from attndeploy.settings_rules import require_calibration
from attndeploy.shapes import Shape, format_shape
from attndeploy.sources import check_image_input, default_example, resolve_source, spec_of
from attndeploy.spec import ModuleSpec
from attndeploy.truth.eager import EagerModel
from attndeploy.usercode import calling_user_code


def _expected_name(settings: ExportSettings) -> str:
    """The result's name as far as it is known before loading anything (for the output path check)."""
    if settings.name:
        return settings.name
    if isinstance(settings.source, str):
        return source_label(settings.source)
    spec = spec_of(settings.source)
    return spec.name if spec else type(settings.source).__name__.lower()


def _example_shape(settings: ExportSettings, family_example: Shape | None, spec: ModuleSpec | None,
                   model: nn.Module) -> Shape:
    example = settings.example
    if isinstance(example, torch.Tensor):
        return tuple(example.shape)
    example = example if example is not None else family_example
    if example is None:
        if spec is None:
            raise UsageError("an example input is required for a model outside the registry",
                             "a tensor or a shape (CLI: --input NxCxHxW)", "no example input")
        return default_example(spec, model)
    return tuple(example)


def _example_outputs(eager: EagerModel, given: object, shape: Shape, name: str) -> dict[str, np.ndarray]:
    """Eager's outputs on the example (the settings' tensor, or the generated input of `shape`)."""
    try:
        with calling_user_code(f"{name}'s forward"):
            if isinstance(given, torch.Tensor):
                return eager.given(given)
            return eager.fp32_at(shape)
    except UsageError:
        raise
    except Exception as err:
        raise UsageError(f"{name} fails in eager mode on the example input", "an input the model accepts",
                         first_line(err)) from err


def prepare(run: Run) -> PreparedModel:
    settings = run.settings
    check_output_paths(settings, _expected_name(settings))
    given = private_copy(settings.source) if isinstance(settings.source, nn.Module) else settings.source
    with torch.random.fork_rng():  # a factory's own random init follows `seed`; the caller's RNG is left as it was
        torch.manual_seed(settings.seed)
        source = resolve_source(given, settings.kwargs, settings.weights, settings.seed, settings.name,
                                custom_modules=settings.custom_modules, trust_checkpoint=settings.trust_checkpoint)
    require_values(source.model, source.name)
    family = adapter_for(source.model).prepare(source.model, settings)
    name = run.name = settings.name or family.name or source.name
    check_output_paths(settings, name, detector=bool(family.metadata))  # the family may have named it otherwise
    truth = family.model.eval()
    spec = source.spec
    if spec is not None:
        require(settings.opset >= spec.min_opset, f"{name} needs ops that exist from opset {spec.min_opset}",
                f"opset >= {spec.min_opset}", settings.opset)
    shape = _example_shape(settings, family.example, spec, truth)
    if spec is not None:
        spec.check_input_shape(shape, int(getattr(truth, "channels", shape[1])))
    else:
        check_image_input(truth, shape)
    for other in settings.parity_shapes or ():
        require(len(other) == len(shape) and (len(other) < 2 or other[1] == shape[1]),
                "parity_shapes must keep the example's rank and channels", format_shape(shape), format_shape(other))
    if family.task_inputs is None:  # a family that ships images (a detector's) calibrates int8 on them
        require_calibration(settings, f"the {family.family} family ships no images")
    inputs = plan_inputs(shape, settings.inputs, settings.calibration if settings.precision == "int8" else None)
    eager = EagerModel(truth, inputs.make, settings.seed)
    outputs = _example_outputs(eager, settings.example, shape, name)
    require(len(outputs) > 0, f"{name} must return at least one tensor", "a tensor (or a tuple/dict of them)",
            "no tensor outputs")
    for note in eager.dropped:
        run.notes.append(note)
        run.log(f"{name}: {note}")
    names = family.output_names or list(outputs)
    require(len(names) == len(outputs), f"{name}'s adapter names every output", f"{len(outputs)} names",
            f"{len(names)}: {names}")
    if settings.deploy_twins:
        deploy, swaps = swap_to_deploy(truth)
    else:
        deploy, swaps = private_copy(truth), []  # later eager runs of the truth must not change what is exported
    if settings.precision != "fp32" and settings.keep_fp32:  # the exported graph's module paths are deploy's
        require_patterns_can_match(settings.keep_fp32, deploy, "keep_fp32 (--keep-fp32)")
    for note in family.notes:  # progress is said once every check here passed: a refusal is one line
        run.log(f"{family.family}: {note}")
    if settings.deploy_twins:
        run.log(f"{name}: swapped {len(swaps)} module(s) for deploy twins")
    return PreparedModel(name, spec, family, eager, deploy, torch.from_numpy(eager.input_at(shape).copy()), inputs,
                         names, {n: tuple(o.shape) for n, o in zip(names, outputs.values())}, swaps)

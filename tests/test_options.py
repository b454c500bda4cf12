"""Each export option declared once (`attndeploy.settings`): the CLI parser, the recipe schema and the API keywords
all come from the declarations, one flag has one meaning, and none is missing (issue 17 item 1).

No test here exports: the CLI is checked by the settings it builds (`settings_from_argv`).
"""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from attndeploy.cli.export_options import REMOVED_FLAGS, add_export_options, export_options
from attndeploy.errors import UsageError
from attndeploy.options import OPTION_KEY, option
from attndeploy.recipes import EXPORT_KEYS, MODEL_KEYS, parse_recipe
from attndeploy.settings import EngineSettings, ExportSettings

NOT_OPTIONS = {"help", "recipe", "json", "verbose"}  # the command's own arguments (output flags), not export settings


def missing_declarations(classes: tuple[type, ...]) -> list[str]:
    """What breaks 'declared once': a field with no declaration, or an option with no flag / no recipe key and no
    reason given (or a reason given while it has both)."""
    problems = []
    for cls in classes:
        for f in dataclasses.fields(cls):
            opt = f.metadata.get(OPTION_KEY)
            if opt is None:
                problems.append(f"{cls.__name__}.{f.name}: not declared with option(...)")
                continue
            missing = [what for what, has in (("CLI flag", opt.flags), ("recipe key", opt.recipe)) if not has]
            if missing and not opt.exempt:
                problems.append(f"{cls.__name__}.{f.name}: no {' or '.join(missing)} and no reason")
            if opt.exempt and not missing:
                problems.append(f"{cls.__name__}.{f.name}: exempt but has a flag and a recipe key")
    return problems


def flags_sharing_a_meaning(parser: argparse.ArgumentParser) -> list[str]:
    """Two option strings that set the same destination to the same kind of value (a bool's on/off pair is fine)."""
    by_meaning: dict[tuple[str, object], list[str]] = {}
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or not action.option_strings:
            continue
        const = action.const if isinstance(action, argparse._StoreConstAction) else "value"
        key = (action.dest, const)
        by_meaning.setdefault(key, []).extend(s for s in action.option_strings if s.startswith("--"))
    return [f"{dest}: {' '.join(flags)}" for (dest, _), flags in by_meaning.items() if len(flags) > 1]


def export_parser() -> argparse.ArgumentParser:
    from attndeploy.cli.main import build_parser

    commands = next(a for a in build_parser("export")._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices["export"]


def test_every_field_has_its_flag_and_recipe_key_or_a_reason():
    assert missing_declarations((ExportSettings, EngineSettings)) == []
    exempt = {o.name: o.exempt for o in export_options() if o.exempt}
    assert set(exempt) == {"out_path", "report"}, exempt  # each with its reason in the declaration


def test_the_declaration_check_finds_a_field_that_lacks_them():
    @dataclasses.dataclass(frozen=True)
    class Planted:
        opset: int = option(17, "ONNX opset", group="export", flag="--opset", recipe="opset")
        quiet: bool = option(False, "no progress", group="output", flag="--quiet")      # no recipe key, no reason
        forgotten: int = 3                                                               # not declared at all

    assert missing_declarations((Planted,)) == ["Planted.quiet: no recipe key and no reason",
                                                "Planted.forgotten: not declared with option(...)"]


def test_no_two_flags_share_a_meaning():
    parser = export_parser()
    assert flags_sharing_a_meaning(parser) == []
    flags = [f for o in export_options() for f in o.flags]
    assert len(flags) == len(set(flags)), sorted(flags)
    assert not set(flags) & set(REMOVED_FLAGS)


def test_the_meaning_check_finds_two_flags_for_one_meaning():
    planted = argparse.ArgumentParser()
    planted.add_argument("--static", dest="dynamic", action="store_const", const=False)
    planted.add_argument("--no-dynamic", dest="dynamic", action="store_const", const=False)  # what --fp16 was
    planted.add_argument("--dynamic", dest="dynamic", action="store_const", const=True)
    assert flags_sharing_a_meaning(planted) == ["dynamic: --static --no-dynamic"]


def test_the_parser_holds_exactly_the_declared_options():
    parser = argparse.ArgumentParser()
    add_export_options(parser)
    dests = {a.dest for a in parser._actions if a.dest != argparse.SUPPRESS} - NOT_OPTIONS
    assert dests == {o.name for o in export_options() if o.flags}
    assert {a.dest for a in export_parser()._actions} - NOT_OPTIONS - {argparse.SUPPRESS} == dests


def test_recipe_keys_come_from_the_declarations():
    assert {"imgsz", "batch", "inputs", "backends", "deploy_twins", "nms", "max_det", "engine", "out"} <= set(EXPORT_KEYS)
    assert {"source", "kwargs", "weights", "custom_modules", "trust_checkpoint", "name"} <= set(MODEL_KEYS)
    recipe = parse_recipe({"model": {"source": "yolov8n.yaml", "custom_modules": "b.py"},
                           "export": {"imgsz": "480,640", "batch": 2, "backends": ["onnxruntime-cpu"],
                                      "deploy_twins": False, "nms": True, "max_det": 100,
                                      "engine": {"workspace_mb": 4096, "max": [4, 3, 480, 640]}}}, "y")
    (job,) = recipe.jobs
    assert (job.imgsz, job.batch, job.deploy_twins, job.nms, job.max_det) == ((480, 640), 2, False, True, 100)
    assert job.engine == EngineSettings(workspace_mb=4096, max=(4, 3, 480, 640))
    assert str(job.custom_modules) == "b.py"
    with pytest.raises(UsageError, match="unknown engine option 'workspace'.*did you mean 'workspace_mb'"):
        parse_recipe({"model": {"source": "se"}, "export": {"engine": {"workspace": 1}}}, "r")


def test_api_keywords_are_the_declared_options():
    names = [o.name for o in export_options() if o.name not in {f.name for f in dataclasses.fields(EngineSettings)}]
    assert names[:3] == ["source", "example", "out_path"]  # create's positional arguments
    with pytest.raises(UsageError, match="unknown export option 'opsett'.*did you mean 'opset'"):
        ExportSettings.create("cbam", opsett=17)
    settings = ExportSettings.create("yolov8n.yaml", None, None, nms=False, max_det=10, imgsz=640, batch=2,
                                     bundle=False)
    assert (settings.nms, settings.max_det, settings.imgsz, settings.batch, settings.bundle) == \
        (False, 10, (640, 640), 2, False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.opset = 18  # type: ignore[misc]


@pytest.mark.parametrize("kwargs,words", [
    ({"int8_target": 0.9}, ["int8_target is used only with precision='int8'", "got int8_target with precision='fp32'"]),
    ({"keep_fp32": ("a.*",)}, ["keep_fp32 is used only with precision='fp16' or precision='int8'"]),
    ({"precision": "fp16", "calibration_method": "entropy"}, ["calibration_method", "precision='fp16'"]),
    ({"iou": 0.5, "nms": False}, ["iou is used only with nms=True", "got iou with nms=False"]),
    ({"max_det": 10}, ["max_det is used only with nms=True or nms=False", "nms=None"]),
    ({"imgsz": 640, "example": (1, 3, 640, 640), "source": "y.yaml"}, ["imgsz and example cannot be given together"]),
    ({"imgsz": 640, "nms": True}, ["do not apply to a registry module", "imgsz (--imgsz), nms (--nms) with 'cbam'"]),
])
def test_the_api_refuses_an_option_that_would_be_ignored(kwargs, words):
    source = kwargs.pop("source", "cbam")
    with pytest.raises(UsageError) as info:
        ExportSettings.create(source, **kwargs)
    assert all(w in str(info.value) for w in words), str(info.value)


def test_engine_settings_have_no_fp16_field():
    assert "fp16" not in {f.name for f in dataclasses.fields(EngineSettings)}
    with pytest.raises(TypeError):
        EngineSettings(fp16=True)  # type: ignore[call-arg]


def test_the_readme_lists_exactly_the_export_flags():
    """README "Commands": every flag it shows for `attndeploy export` works, and every declared flag is shown, and the
    command's own output flags (`--json`, `--verbose`)."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("attndeploy export NAME", 1)[1].split("attndeploy export --recipe", 1)[0]
    shown = set(re.findall(r"--[a-z0-9][a-z0-9-]*", block))
    parser_flags = {s for a in export_parser()._actions if a.help != argparse.SUPPRESS for s in a.option_strings}
    declared_flags = {f for o in export_options() for f in o.flags if f.startswith("--")}
    output_flags = {s for a in export_parser()._actions if a.dest in NOT_OPTIONS - {"help", "recipe"}
                    for s in a.option_strings}
    assert shown - parser_flags == set()
    assert declared_flags - shown == set()
    assert output_flags == {"--json", "--verbose"} and output_flags - shown == set()

"""`attndeploy export ARGS` -> the `ExportSettings` it runs with, checked without exporting (issue 17 items 1 and 4).

Each case compares the settings the command line builds with the settings the Python API
builds from the same options; together the cases reach every declared flag. One real export
per source kind stays in the CLI tests (test_cli.py, test_cli_user_models.py,
test_ultralytics_export.py, test_ultralytics_adapter.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from attndeploy.cli.export_options import export_options, settings_from_argv
from attndeploy.cli.main import main
from attndeploy.settings import EngineSettings, ExportSettings


@pytest.fixture
def here(tmp_path, monkeypatch):
    """A working folder with the files some flags must find."""
    monkeypatch.chdir(tmp_path)
    for name in ("cal.npy", "w.pt", "blocks.py", "inputs.npz", "a.so", "b.so"):
        (tmp_path / name).write_bytes(b"")
    return tmp_path


CASES = [  # (argv, the API's options: source, example, then keywords)
    (["cbam"], ("cbam", None, {})),
    (["cbam", "--opset", "18", "--exporter", "dynamo", "--static"], ("cbam", None, dict(opset=18, exporter="dynamo",
                                                                                       dynamic=False))),
    (["cbam", "--dynamic", "--deform-conv", "decompose"], ("cbam", None, dict(dynamic=True, deform_conv="decompose"))),
    (["se", "--input", "2x64x8x8", "--kwargs", '{"channels": 64}', "--name", "x", "--seed", "3", "--weights", "w.pt"],
     ("se", (2, 64, 8, 8), dict(kwargs={"channels": 64}, name="x", seed=3, weights=Path("w.pt")))),
    (["cbam", "--no-rewrites", "--no-deploy-twins", "--no-simplify", "--no-bundle"],
     ("cbam", None, dict(rewrites=False, deploy_twins=False, simplify=False, bundle=False))),
    (["cbam", "--parity-shapes", "1x64x8x8,2x64x16x16", "--atol", "1e-4", "--rtol", "0", "--backends",
      "onnxruntime-cpu,onnxruntime-cuda", "--inputs", "inputs.npz"],
     ("cbam", None, dict(parity_shapes=((1, 64, 8, 8), (2, 64, 16, 16)), atol=1e-4, rtol=0.0, inputs=Path("inputs.npz"),
                         backends=("onnxruntime-cpu", "onnxruntime-cuda")))),
    (["cbam", "--precision", "fp16", "--keep-fp32", "channel.*,*.softmax"],
     ("cbam", None, dict(precision="fp16", keep_fp32=("channel.*", "*.softmax")))),
    (["cbam", "--precision", "int8", "--calib", "cal.npy", "--calib-method", "entropy", "--int8-target", "0.95",
      "--int8-flavour", "ort-cpu"],
     ("cbam", None, dict(precision="int8", calibration=Path("cal.npy"), calibration_method="entropy", int8_target=0.95,
                         int8_flavour="ort-cpu"))),
    (["yolov8n.yaml", "--imgsz", "480,640", "--batch", "2", "--custom-modules", "blocks.py", "--trust-checkpoint"],
     ("yolov8n.yaml", None, dict(imgsz=(480, 640), batch=2, custom_modules=Path("blocks.py"), trust_checkpoint=True))),
    (["yolov8n.yaml", "--nms", "embed", "--max-det", "100", "--conf", "0.25", "--iou", "0.5", "--agnostic-nms"],
     ("yolov8n.yaml", None, dict(nms=True, max_det=100, conf=0.25, iou=0.5, agnostic_nms=True))),
    (["yolo26n.yaml", "--nms", "free", "--max-det", "50"], ("yolo26n.yaml", None, dict(nms=False, max_det=50))),
    (["cbam", "--engine", "--workspace", "4096", "--min", "1x64x8x8", "--opt", "1x64x56x56", "--max", "2x64x64x64",
      "--plugin", "a.so", "--plugin", "b.so", "--rebuild", "--timing-cache", "t.cache"],
     ("cbam", None, dict(engine=EngineSettings(min=(1, 64, 8, 8), opt=(1, 64, 56, 56), max=(2, 64, 64, 64),
                                               workspace_mb=4096, timing_cache=Path("t.cache"),
                                               plugins=(Path("a.so"), Path("b.so")), rebuild=True)))),
    (["cbam", "--precision", "fp16", "--engine"], ("cbam", None, dict(precision="fp16", engine=EngineSettings()))),
    (["cbam", "--out", "o"], ("cbam", None, dict(out_dir=Path("o")))),
]


@pytest.mark.parametrize("argv,api", CASES, ids=[" ".join(c[0])[:60] for c in CASES])
def test_the_command_line_builds_the_apis_settings(argv, api, here):
    source, example, options = api
    expected = ExportSettings.create(source, example, None, report=True, **options)
    assert settings_from_argv(argv) == expected


def test_the_cases_reach_every_flag():
    typed = {word for argv, _ in CASES for word in argv if word.startswith("--")}
    flags = {f for o in export_options() for f in o.flags if f.startswith("--")}
    assert flags - typed == set()


@pytest.mark.parametrize("argv,first,second", [
    (["--workspace", "10"], "--workspace", "--engine"),
    (["--plugin", "a.so"], "--plugin", "--engine"),
    (["--min", "1x64x8x8"], "--min", "--engine"),
    (["--opt", "1x64x8x8"], "--opt", "--engine"),
    (["--max", "1x64x8x8"], "--max", "--engine"),
    (["--timing-cache", "t.cache"], "--timing-cache", "--engine"),
    (["--rebuild"], "--rebuild", "--engine"),
    (["--calib", "cal.npy"], "--calib", "--precision int8"),
    (["--calib-method", "entropy", "--precision", "fp16"], "--calib-method", "--precision int8"),
    (["--keep-fp32", "a.*"], "--keep-fp32", "--precision fp16 or --precision int8"),
    (["--int8-target", "0.9"], "--int8-target", "--precision int8"),
    (["--int8-flavour", "trt"], "--int8-flavour", "--precision int8"),  # given, even at its default
    (["--max-det", "10"], "--max-det", "--nms embed or --nms free"),
    (["--iou", "0.5", "--nms", "free"], "--iou", "--nms embed"),
    (["--agnostic-nms"], "--agnostic-nms", "--nms embed"),
    (["--imgsz", "640", "--input", "1x3x640x640"], "--imgsz", "--input"),
    (["--batch", "2", "--input", "1x3x640x640"], "--batch", "--input"),
])
def test_a_flag_without_the_one_it_needs_names_both(argv, first, second, here, capsys):
    assert main(["export", "cbam", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and first in err[0] and second in err[0], err
    assert "expected" in err[0] and "got" in err[0]
    assert list(here.iterdir()) and not (here / "models").exists()


@pytest.mark.parametrize("flag,replacement", [("--fp16", "--precision fp16"), ("--no-dynamic", "--static")])
@pytest.mark.parametrize("more", [[], ["--engine"]])
def test_a_removed_flag_names_what_replaced_it(flag, replacement, more, capsys):
    assert main(["export", "cbam", flag, *more]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{flag} was removed" in err[0] and f"expected {replacement}" in err[0], err


def _recipe(folder: Path, export: str) -> str:
    path = folder / "r.toml"
    path.write_text(f'[model]\nsource = "cbam"\n[export]\nout = "{folder.as_posix()}/o"\n{export}\n')
    return str(path)


def test_recipe_options_are_overridden_by_the_flags_typed(here, monkeypatch, capsys):
    from attndeploy.cli import export_cmd

    jobs = []
    monkeypatch.setattr(export_cmd, "run_recipe", lambda recipe, log: jobs.extend(recipe.jobs) or [None])
    monkeypatch.setattr(export_cmd, "_require_tensorrt", lambda jobs: None)
    monkeypatch.setattr(export_cmd, "_report", lambda res, args, job: 0)
    recipe = _recipe(here, 'precision = "int8"\ncalib = "cal.npy"\nengine = { workspace_mb = 1024 }')
    assert main(["export", "--recipe", recipe, "--int8-target", "0.95", "--max", "2x64x64x64"]) == 0
    (job,) = jobs  # --int8-target needs int8: the recipe's precision counts; --max joins the recipe's engine table
    assert job.int8_target == 0.95 and job.engine == EngineSettings(workspace_mb=1024, max=(2, 64, 64, 64))
    plain = _recipe(here, "opset = 17")
    assert main(["export", "--recipe", plain, "--workspace", "10"]) == 2
    assert "--workspace is used only with --engine" in capsys.readouterr().err
    assert main(["export", "--recipe", plain, "--int8-target", "0.9"]) == 2
    assert "--int8-target is used only with --precision int8" in capsys.readouterr().err

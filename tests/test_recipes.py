"""Recipes: one reader for `[model]` and `[zoo]`, validation that names the key, and `run_recipe` (files, reports,
summary, failures). (Was test_zoo_recipe.py.)"""

import json
from pathlib import Path

import pytest

import attndeploy
from attndeploy import recipes
from attndeploy.errors import UsageError
from attndeploy.pipeline import ExportFailed
from attndeploy.recipes import RecipeFailed, load_recipe, parse_recipe, run_recipe

ROOT = Path(__file__).resolve().parents[1]
ZOO_TOML = ROOT / "export" / "zoo.toml"


def zoo(tmp_path: Path, *names: str, **keys) -> recipes.Recipe:
    return parse_recipe({"zoo": {"modules": list(names), "out": str(tmp_path), **keys}}, "zoo")


def test_repository_zoo_recipe_is_the_whole_registry_at_defaults():
    recipe = load_recipe(ZOO_TOML)
    assert recipe.kind == "zoo" and [j.name for j in recipe.jobs] == attndeploy.list_modules()
    job = recipe.jobs[0]
    assert (job.opset, job.dynamic, job.exporter) == (17, True, "auto")
    assert job.out_path == Path("models") / job.name / f"{job.name}.onnx"
    assert job.report and job.report_path(job.name) == Path("models") / job.name / "report.json"


def test_a_list_of_names_keeps_its_order_without_duplicates(tmp_path):
    recipe = zoo(tmp_path, "se", "cbam", "se", opset=18, dynamic=False, exporter="dynamo", seed=3)
    assert [j.name for j in recipe.jobs] == ["se", "cbam"]
    assert {(j.opset, j.dynamic, j.exporter, j.seed) for j in recipe.jobs} == {(18, False, "dynamo", 3)}


def test_the_repository_model_recipe_is_one_job():
    recipe = load_recipe(ROOT / "export" / "host_cbam.toml")
    (job,) = recipe.jobs
    assert recipe.kind == "model" and job.name == "host_cbam" and job.source == "attndeploy.nets.host:build_host"
    assert job.kwargs == {"attn": "cbam", "width": 32} and job.example == (1, 3, 96, 96)
    assert (job.opset, job.exporter, job.precision, job.dynamic) == (17, "auto", "fp32", True)
    assert job.out_path == Path("models/host_cbam/host_cbam.onnx") and job.weights is None


@pytest.mark.parametrize("data,words", [
    ({"zoo": {"modules": ["cbma"]}}, ["unknown module 'cbma'", "did you mean 'cbam'"]),
    ({"zoo": {"modules": "some"}}, ["[zoo].modules", '"all" or ["se", "cbam"]', "'some'"]),
    ({"zoo": {"modules": []}}, ["[zoo].modules"]),
    ({"zoo": {"modules": ["se"], "opset": "17"}}, ["recipe key [zoo].opset must be an int", "'17' (str)"]),
    ({"zoo": {"modules": ["se"], "dynamic": 1}}, ["recipe key [zoo].dynamic must be True or False"]),
    ({"zoo": {"modules": "all", "opsett": 17}}, ["unknown key in recipe section [zoo] 'opsett'", "did you mean 'opset'"]),
    ({"zoo": {"modules": ["se"], "opset": 17, "exporter": "dynamo"}}, ["dynamo exporter cannot write opsets below 18"]),
    ({"zoo": {"modules": ["se"], "opset": 9}}, ["opset is out of range", "13..20"]),
    ({"zoo": {"opset": 17}}, ["[zoo].modules is required"]),
    ({"zoo": {"modules": ["se"]}, "model": {"source": "x:y"}}, ["either a [model] or a [zoo] table"]),
    ({}, ["either a [model] or a [zoo] table"]),
    ({"model": {"kwargs": {}}}, ["[model].source is required"]),
    ({"model": {"source": "se"}, "export": {"input": "1x3"}, "zoo": {}}, ["either a [model] or a [zoo]"]),
    ({"model": {"source": "se"}, "export": {"input": [1, 0, 3]}}, ["[export].input dimensions must be positive"]),
    ({"model": {"source": "se"}, "export": {"precision": "fp8"}}, ["unknown precision 'fp8'"]),
])
def test_bad_recipes_name_the_key(data, words):
    with pytest.raises(UsageError) as info:
        parse_recipe(data, "r")
    assert all(w in str(info.value) for w in words), str(info.value)


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(UsageError, match="must exist"):
        load_recipe(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[zoo\nmodules = 'all'")
    with pytest.raises(UsageError, match="not valid TOML"):
        load_recipe(bad)


def test_run_recipe_writes_each_module_and_a_summary(tmp_path):
    lines = []
    results = run_recipe(zoo(tmp_path / "models", "se", "eca"), log=lines.append, progress=False)
    assert [r.name for r in results] == ["se", "eca"] and all(r.passed for r in results)
    for name in ("se", "eca"):
        report = json.loads((tmp_path / "models" / name / "report.json").read_text())
        assert report["onnx"] == str(tmp_path / "models" / name / f"{name}.onnx") and report["parity"]["passed"]
        assert report["opset"] == 17 and report["dynamic"] is True and len(report["parity"]["shapes"]) == 3
    assert lines[-1].startswith("zoo: 2/2 modules exported and passed parity in ") and "opset 17, dynamic" in lines[-1]


def test_a_module_that_cannot_export_does_not_stop_the_others(tmp_path, monkeypatch):
    real = recipes.run_pipeline

    def flaky(settings, *args, **kwargs):
        if settings.source == "eca":
            raise ExportFailed("export failed with every exporter that can write opset 17: torchscript: boom")
        return real(settings, *args, **kwargs)

    monkeypatch.setattr(recipes, "run_pipeline", flaky)
    lines = []
    with pytest.raises(RecipeFailed) as info:
        run_recipe(zoo(tmp_path, "eca", "se"), log=lines.append, progress=False)
    assert [r.name for r in info.value.results] == ["se"] and set(info.value.failures) == {"eca"}
    assert "boom" in str(info.value) and lines[-1].startswith("zoo: 1/2 modules")
    assert (tmp_path / "se" / "se.onnx").exists() and not (tmp_path / "eca").exists()


def test_unwritable_out_is_a_usage_error_before_any_export(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UsageError, match="directory"):
        zoo(blocker / "models", "se")
    assert blocker.read_text() == ""


@pytest.mark.slow
def test_whole_zoo_exports_and_passes(tmp_path):
    recipe = load_recipe(ZOO_TOML)
    jobs = tuple(j.replace(out_path=tmp_path / j.name / f"{j.name}.onnx", report=False) for j in recipe.jobs)
    results = run_recipe(recipes.Recipe(None, "zoo", jobs), progress=False)
    assert [r.name for r in results] == attndeploy.list_modules() and all(r.passed for r in results)


# Moved from test_loading.py (single-model recipes), adapted to the one reader's messages.
GOOD = {"model": {"source": "attndeploy.nets.host:build_host"}, "export": {"input": "1x3x64x64"}}


@pytest.mark.parametrize("change, rule", [
    ({"modle": {}}, "unknown recipe section 'modle'"),
    ({"export": {"input": [1, 3, 64, 64], "opst": 17}}, "unknown key in recipe section \\[export\\] 'opst'"),
    ({"model": {}}, r"\[model\].source is required"),
    ({"export": {"opset": 17}}, r"\[export\].input is required"),
    ({"export": {"input": [1, 3, 0, 64]}}, r"\[export\].input dimensions must be positive"),
    ({"export": {"input": "1x3xAx64"}}, r"\[export\].input must be a shape"),
    ({"export": {"input": [1, 3, 64, 64], "opset": "17"}}, r"recipe key \[export\].opset must be an int"),
    ({"export": {"input": [1, 3, 64, 64], "opset": 9}}, "opset is out of range"),
    ({"export": {"input": [1, 3, 64, 64], "exporter": "onnx"}}, "unknown exporter"),
    ({"model": {"source": "se"}, "export": {"input": [1, 64, 8, 8], "precision": "int8"}},
     "precision='int8' needs calibration data"),   # a registry module ships no images (a factory's family decides later)
    ({"export": {"input": [1, 3, 64, 64], "precision": "fp64"}}, "unknown precision 'fp64'"),
    ({"export": {"input": [1, 3, 64, 64], "dynamic": "yes"}}, r"recipe key \[export\].dynamic must be True or False"),
    ({"model": {"source": "m:f", "kwargs": [1]}}, r"\[model\].kwargs must be a dict"),
    ({"model": {"source": "m:f", "kwargs": {"gamma": float("inf")}}}, "model argument 'gamma' must be a finite"),
])
def test_bad_model_recipes_name_the_key(change: dict, rule: str) -> None:
    with pytest.raises(UsageError, match=rule):
        parse_recipe({**GOOD, **change}, "r")


def test_recipe_file_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("[model\nsource = 1\n")
    with pytest.raises(UsageError, match="not valid TOML"):
        load_recipe(tmp_path / "bad.toml")
    with pytest.raises(UsageError, match="must exist"):
        load_recipe(tmp_path / "absent.toml")
    (tmp_path / "typo.toml").write_text('[model]\nsource = "a:b"\nkwarg = {}\n[export]\ninput = [1]\n')
    with pytest.raises(UsageError, match="did you mean 'kwargs'"):
        load_recipe(tmp_path / "typo.toml")

"""Zoo recipes: `[zoo]` reading and validation, and `export_zoo` (files, reports, summary, failures)."""

import json
from pathlib import Path

import pytest

import attndeploy
from attndeploy.errors import UsageError
from attndeploy.exporting.pipeline import ExportFailed
from attndeploy.recipes_zoo import (
    ZooExportFailed,
    ZooRecipe,
    export_zoo,
    is_zoo_recipe,
    load_any_recipe,
    load_zoo_recipe,
    parse_zoo_recipe,
)

ZOO_TOML = Path(__file__).resolve().parents[1] / "export" / "zoo.toml"


def test_repository_zoo_recipe_is_the_whole_registry_at_defaults():
    recipe = load_zoo_recipe(ZOO_TOML)
    assert recipe.modules == tuple(attndeploy.list_modules())
    assert (recipe.opset, recipe.dynamic, recipe.out_dir, recipe.exporter) == (17, True, Path("models"), "auto")
    assert is_zoo_recipe(ZOO_TOML) and isinstance(load_any_recipe(ZOO_TOML), ZooRecipe)


def test_a_list_of_names_keeps_its_order_without_duplicates():
    recipe = parse_zoo_recipe({"zoo": {"modules": ["se", "cbam", "se"], "opset": 18, "dynamic": False,
                                       "out": "out", "exporter": "dynamo", "seed": 3}})
    assert recipe.modules == ("se", "cbam") and recipe.to_dict()["out"] == "out"
    assert (recipe.opset, recipe.dynamic, recipe.exporter, recipe.seed) == (18, False, "dynamo", 3)


@pytest.mark.parametrize("data,words", [
    ({"zoo": {"modules": ["cbma"]}}, ["unknown module 'cbma'", "did you mean 'cbam'"]),
    ({"zoo": {"modules": "some"}}, ["[zoo].modules", '"all" or ["se", "cbam"]', "'some'"]),
    ({"zoo": {"modules": []}}, ["[zoo].modules"]),
    ({"zoo": {"modules": "all", "opset": "17"}}, ["[zoo].opset has the wrong type", "'17' (str)"]),
    ({"zoo": {"modules": "all", "dynamic": 1}}, ["[zoo].dynamic has the wrong type"]),
    ({"zoo": {"modules": "all", "opsett": 17}}, ["unknown key in recipe section [zoo] 'opsett'", "did you mean 'opset'"]),
    ({"zoo": {"modules": "all", "opset": 17, "exporter": "dynamo"}}, ["dynamo exporter cannot write opsets below 18"]),
    ({"zoo": {"modules": "all", "opset": 9}}, ["opset must be in the range"]),
    ({"zoo": {"opset": 17}}, ["[zoo].modules is required"]),
    ({"model": {"source": "x:y"}}, ["unknown section in a zoo recipe 'model'"]),
    ({}, ["a zoo recipe needs a [zoo] table"]),
])
def test_bad_recipes_name_the_key(data, words):
    with pytest.raises(UsageError) as info:
        parse_zoo_recipe(data)
    assert all(w in str(info.value) for w in words), str(info.value)


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(UsageError, match="must exist"):
        load_zoo_recipe(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[zoo\nmodules = 'all'")
    with pytest.raises(UsageError, match="not valid TOML"):
        load_zoo_recipe(bad)


def test_single_model_recipes_go_to_the_other_reader(tmp_path):
    path = tmp_path / "one.toml"
    path.write_text('[model]\nsource = "attndeploy.nets.host:build_host"\n[export]\ninput = [1, 3, 32, 32]\n')
    assert not is_zoo_recipe(path)
    recipe = load_any_recipe(path)
    assert not isinstance(recipe, ZooRecipe) and recipe.source == "attndeploy.nets.host:build_host"


def test_export_zoo_writes_each_module_and_a_summary(tmp_path):
    lines = []
    recipe = ZooRecipe(("se", "eca"), out_dir=tmp_path / "models")
    results = export_zoo(recipe, log=lines.append, progress=False)
    assert [r.name for r in results] == ["se", "eca"] and all(r.passed for r in results)
    for name in ("se", "eca"):
        report = json.loads((tmp_path / "models" / name / "report.json").read_text())
        assert report["onnx"] == str(tmp_path / "models" / name / f"{name}.onnx") and report["parity"]["passed"]
        assert report["opset"] == 17 and report["dynamic"] is True and len(report["parity"]["shapes"]) == 4
    assert lines[-1].startswith("zoo: 2/2 modules exported and passed parity in ") and "opset 17, dynamic" in lines[-1]


def test_a_module_that_cannot_export_does_not_stop_the_others(tmp_path, monkeypatch):
    from attndeploy.exporting import pipeline

    real = pipeline.export

    def flaky(model_or_name, *args, **kwargs):
        if model_or_name == "eca":
            raise ExportFailed("export failed with every exporter that can write opset 17: torchscript: boom")
        return real(model_or_name, *args, **kwargs)

    monkeypatch.setattr(pipeline, "export", flaky)
    lines = []
    with pytest.raises(ZooExportFailed) as info:
        export_zoo(ZooRecipe(("eca", "se"), out_dir=tmp_path), log=lines.append, progress=False)
    assert [r.name for r in info.value.results] == ["se"] and set(info.value.failures) == {"eca"}
    assert "boom" in str(info.value) and lines[-1].startswith("zoo: 1/2 modules")
    assert (tmp_path / "se" / "se.onnx").exists() and not (tmp_path / "eca").exists()


def test_unwritable_out_is_a_usage_error_before_any_export(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UsageError, match="writable"):
        export_zoo(ZooRecipe(("se",), out_dir=blocker / "models"), progress=False)


@pytest.mark.slow
def test_whole_zoo_exports_and_passes(tmp_path):
    recipe = load_zoo_recipe(ZOO_TOML)
    results = export_zoo(ZooRecipe(recipe.modules, recipe.opset, recipe.dynamic, tmp_path), progress=False)
    assert [r.name for r in results] == list(recipe.modules) and all(r.passed for r in results)

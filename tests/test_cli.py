import json
import subprocess
import sys

import attndeploy
from attndeploy.cli.main import main


def test_list_json(capsys):
    assert main(["list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["modules"]
    assert [r["name"] for r in rows] == attndeploy.list_modules()
    assert all(len(r["example_shape"]) == 4 for r in rows)


def test_list_table(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "cbam" in out and "1x64x56x56" in out


def test_readme_main_job_prints_the_table(tmp_path):
    """`attndeploy export cbam --opset 17` as the README says, in a fresh process from a bare folder."""
    proc = subprocess.run([sys.executable, "-m", "attndeploy", "export", "cbam", "--opset", "17"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "PASSED" in proc.stdout and "max abs" in proc.stdout
    assert (tmp_path / "models" / "cbam" / "cbam.onnx").exists()
    assert json.loads((tmp_path / "models" / "cbam" / "report.json").read_text())["parity"]["passed"]
    assert "route torchscript-17 (dynamic axes [0, 2, 3])" in proc.stderr


def test_static_export_checks_only_the_example_shape(tmp_path, capsys):
    assert main(["export", "se", "--static", "--out", str(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dynamic"] is False and report["parity"]["shapes"] == ["1x64x56x56"]


def test_kwargs_and_input_override(tmp_path, capsys):
    args = ["export", "se", "--kwargs", '{"channels": 32, "reduction": 8}', "--input", "2x32x17x9",
            "--out", str(tmp_path), "--json"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["input_shape"] == [2, 32, 17, 9] and report["parity"]["passed"]


def test_zoo_recipe_prints_one_json_object(tmp_path, capsys):
    recipe = tmp_path / "zoo.toml"
    recipe.write_text(f"[zoo]\nmodules = ['se']\nout = '{tmp_path.as_posix()}'\ndynamic = false\n")
    assert main(["export", "--recipe", str(recipe), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] and [r["name"] for r in report["results"]] == ["se"]
    assert report["results"][0]["onnx"] == str(tmp_path / "se" / "se.onnx")


# `--exporter X --opset N` reaching the settings: tests/test_cli_settings.py (no export); the pipeline honouring
# the exporter: test_blog_models.py (torchscript and dynamo), test_cli_user_models.py (auto at 18 -> dynamo) and
# test_readme_main_job_prints_the_table (auto at 17 -> torchscript).


def test_a_recipe_refuses_the_model_options_it_would_ignore(tmp_path, capsys):
    recipe = tmp_path / "zoo.toml"
    recipe.write_text(f"[zoo]\nmodules = ['se']\nout = '{tmp_path.as_posix()}'\n")
    assert main(["export", "--recipe", str(recipe), "--input", "1x64x8x8", "--seed", "3"]) == 2
    err = capsys.readouterr().err
    assert "--recipe takes the model, its files and its seed from the recipe" in err and "--input, --seed" in err


def test_a_zoo_recipe_with_a_failing_module_still_prints_the_others(tmp_path, capsys):
    recipe = tmp_path / "zoo.toml"
    recipe.write_text(f"[zoo]\nmodules = ['se', 'spd']\nout = '{tmp_path.as_posix()}'\ndynamic = false\n"
                      "input = '1x64x9x9'\n")   # SPD-Conv needs even H and W
    assert main(["export", "--recipe", str(recipe), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert not report["passed"] and [r["name"] for r in report["results"]] == ["se"] and "spd" in report["failures"]

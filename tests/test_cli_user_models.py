"""User models through the CLI: factories, .py files, recipes, weights, and the pre-export lint."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from attndeploy.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
DETECTOR = "tests.test_torch_lint:_Detector"


def test_lint_names_the_module_path_and_hazard(capsys):
    assert main(["lint", DETECTOR, "--input", "1x3x20x16"]) == 0
    out = capsys.readouterr().out
    # the export's own lint: at the cheapest input the model is known to take (the sweep's smallest)
    assert re.search(r"backbone\.layer3\.1\.attn: F\.adaptive_avg_pool2d\(output_size=\(\d+, 1\)\)", out), out
    assert "handled by the export-time rewrite 'adaptive_avg_pool2d'" in out
    assert "2 finding(s), 2 handled" in out


def test_lint_on_a_clean_model_reports_nothing(capsys):
    assert main(["lint", "torchvision.models:resnet18", "--input", "1x3x32x32", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["findings"] == []


def test_lint_flags_what_needs_a_code_change(capsys):
    model_file = ROOT / "tests" / "blog_models.py"
    assert main(["lint", f"{model_file}:SAGANBlog", "--kwargs", '{"in_dim": 32}', "--input", "1x32x8x8"]) == 1
    assert "gamma" in capsys.readouterr().out


def test_export_factory_with_rewrites_in_the_report(tmp_path, capsys):
    args = ["export", DETECTOR, "--input", "1x3x20x16", "--opset", "18", "--out", str(tmp_path), "--json"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["name"] == "_Detector" and report["parity"]["passed"] and report["exporter"] == "dynamo"
    assert report["rewrites"]["counts"]["adaptive_avg_pool2d"] >= 2
    assert report["lint"] and report["lint"][0]["path"] == "backbone.layer3.1.attn"


def test_export_with_weights_uses_them(tmp_path, capsys):
    from tests.test_torch_lint import _Detector

    model = _Detector()
    weights = tmp_path / "w.pt"
    torch.save(model.state_dict(), weights)
    out = tmp_path / "out"
    args = ["export", DETECTOR, "--input", "1x3x20x16", "--weights", str(weights), "--out", str(out), "--json"]
    assert main(args) == 0
    capsys.readouterr()
    import onnxruntime as ort

    x = torch.randn(2, 3, 11, 13)
    got = ort.InferenceSession(str(out / "_Detector.onnx")).run(None, {"input": x.numpy()})[0]
    torch.testing.assert_close(torch.from_numpy(got), model.eval()(x).detach(), atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("args,rule", [
    (["export", "no_such_pkg.models:build", "--input", "1x3x8x8"], "import"),
    (["export", DETECTOR], "an example input is required"),
    (["export", DETECTOR, "--input", "3x20x16"], "rank"),
    (["export", "cbam", "--recipe", "export/zoo.toml"], "exactly one of them"),
])
def test_bad_user_model_input_exits_2(args, rule, tmp_path, capsys):
    assert main([*args, "--out", str(tmp_path / "out")]) == 2
    assert rule in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_weights_that_do_not_match_list_the_keys(tmp_path, capsys):
    weights = tmp_path / "w.pt"
    torch.save({"stem.weight": torch.zeros(1), "extra.bias": torch.zeros(2)}, weights)
    assert main(["export", DETECTOR, "--input", "1x3x8x8", "--weights", str(weights), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "missing" in err and "unexpected" in err and "extra.bias" in err


def test_checkpoint_with_pickled_objects_is_refused(tmp_path, capsys):
    weights = tmp_path / "w.pt"
    torch.save({"state_dict": {}, "opt": Path("x")}, weights)
    assert main(["export", DETECTOR, "--input", "1x3x8x8", "--weights", str(weights), "--out", str(tmp_path)]) == 2
    assert "weights_only" in capsys.readouterr().err


@pytest.mark.slow
def test_host_recipe_exports(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "attndeploy", "export", "--recipe", str(ROOT / "export/host_cbam.toml"),
                           "--out", str(tmp_path), "--json"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["parity"]["passed"] and report["onnx"] == str(tmp_path / "host_cbam.onnx")   # --out moves the files

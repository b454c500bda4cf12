import json

import pytest
import torch

from attndeploy.selftest import main


def test_selftest_runs_what_the_machine_has_and_says_why_it_skips(tmp_path, capsys):
    out = tmp_path / "selftest.json"
    assert main(["--names", "se,cbam", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["modules"]) == {"se", "cbam"}
    assert report["modules"]["cbam"]["onnxruntime-cpu"]["passed"] is True
    if not torch.cuda.is_available():
        assert report["modules"]["se"]["eager-cuda-fp16"]["skipped"].startswith("no CUDA device")
        assert report["stages_run"] == 2
    assert "stages ran" in capsys.readouterr().out


def test_selftest_gpu_flag_without_cuda_is_a_usage_error(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert main(["--gpu", "--names", "se", "--out", str(tmp_path / "r.json")]) == 2
    assert "--gpu needs a CUDA device" in capsys.readouterr().err


def test_selftest_unknown_name(tmp_path, capsys):
    assert main(["--names", "see", "--out", str(tmp_path / "r.json")]) == 2
    assert "did you mean 'se'" in capsys.readouterr().err

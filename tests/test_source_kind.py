"""One rule for what a source string names (`attndeploy.source_kind.classify_source`), and every caller on it."""

from __future__ import annotations

import pytest

from attndeploy.source_kind import SourceKind, classify_source

K = SourceKind


@pytest.mark.parametrize("text,kind,location,factory,label", [
    ("cbam", K.REGISTRY, "cbam", None, "cbam"),
    ("mypkg.models:build", K.MODULE, "mypkg.models", "build", "build"),
    ("mypkg.models:Net.build", K.MODULE, "mypkg.models", "Net.build", "Net.build"),
    ("nets/net.py", K.FILE, "nets/net.py", None, "net"),
    ("nets/net.py:make", K.FILE, "nets/net.py", "make", "make"),
    ("nets/net:make", K.FILE, "nets/net", "make", "make"),          # a path without .py is still a path
    (r"C:\nets\net.py", K.FILE, r"C:\nets\net.py", None, "net"),      # a drive is no factory
    (r"C:\nets\net.py:build", K.FILE, r"C:\nets\net.py", "build", "build"),
    ("D:net.py", K.FILE, "D:net.py", None, "net"),                     # drive-relative
    (r"C:\runs\yolov8n-cbam.YAML", K.YAML, r"C:\runs\yolov8n-cbam.YAML", None, "yolov8n-cbam"),
    ("cfg/y.yml", K.YAML, "cfg/y.yml", None, "y"),
    ("runs/best.PT", K.CHECKPOINT, "runs/best.PT", None, "best"),
    ("m.pth", K.CHECKPOINT, "m.pth", None, "m"),
    ("models/cbam.onnx", K.ONNX, "models/cbam.onnx", None, "cbam"),
    ("m:build", K.MODULE, "m", "build", "build"),                      # a one-letter module, not a drive
])
def test_the_rule(text, kind, location, factory, label):
    found = classify_source(text)
    assert (found.kind, found.location, found.label) == (kind, location, label)
    if factory is not None:
        assert found.factory == factory
    assert found.well_formed or kind not in (K.MODULE, K.FILE)


@pytest.mark.parametrize("text", [":build", "pkg.mod:", "pkg:not a name", "pkg:1st"])
def test_malformed_factory_specs_are_modules_the_loader_refuses(text):
    found = classify_source(text)
    assert found.kind is K.MODULE and not found.well_formed
    from attndeploy.errors import UsageError
    from attndeploy.loading import resolve_factory

    with pytest.raises(UsageError, match="a model source is 'pkg.module:factory'"):
        resolve_factory(text)


def test_every_caller_asks_the_one_rule():
    """The five places that used to decide (with two colon rules) give the classifier's answer."""
    from attndeploy.adapters.ultralytics_sources import is_checkpoint, is_yaml
    from attndeploy.settings_checks import is_model_file, source_label
    from attndeploy.sources import is_registry_name

    texts = ["se", "pkg.mod:make", r"C:\w\best.pt", r"C:\w\y.yaml", "y.yaml:build", "a.py", "m.onnx", "D:net.py"]
    for text in texts:
        found = classify_source(text)
        assert is_registry_name(text) == (found.kind is K.REGISTRY)
        assert is_yaml(text) == (found.kind is K.YAML) and is_checkpoint(text) == (found.kind is K.CHECKPOINT)
        assert is_model_file(text) == found.is_file and source_label(text) == found.label
    assert is_checkpoint(r"C:\w\best.pt") and is_yaml(r"C:\w\y.yaml") and not is_yaml("y.yaml:build")


def test_lint_sends_onnx_files_to_the_onnx_lint_in_any_case(tmp_path, capsys):
    from attndeploy.cli.main import main

    assert main(["lint", str(tmp_path / "absent.ONNX")]) == 2   # the ONNX lint's own refusal, not a module import
    err = capsys.readouterr().err
    assert "absent.ONNX" in err and "import" not in err, err
    assert main(["lint", "se.onnx", "--input", "1x64x8x8"]) == 2
    err = capsys.readouterr().err
    assert "lint of an ONNX file takes --trt only" in err and "--input" in err
    assert main(["lint", "se", "--trt", "10"]) == 2
    assert "--trt and --jetpack are used only with an ONNX file" in capsys.readouterr().err


def test_export_refuses_an_onnx_file_naming_the_commands_that_take_it(tmp_path, capsys):
    from attndeploy.cli.main import main

    assert main(["export", "model.onnx", "--input", "1x3x8x8", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "export takes a PyTorch model" in err and "attndeploy lint MODEL.onnx" in err
    assert not (tmp_path / "o").exists()

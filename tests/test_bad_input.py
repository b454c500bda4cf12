"""Bad input: a one-line error naming the rule, the expected and the actual value; exit 2; no files left."""

import pytest

from attndeploy.cli.main import main


def run_bad(args, tmp_path, capsys):
    out_dir = tmp_path / "out"
    code = main([*args, "--out", str(out_dir)] if "--out" not in args else args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert err and err[-1].startswith("error: "), err
    leftovers = list(out_dir.rglob("*")) if out_dir.exists() else []
    assert leftovers == [], leftovers
    return err[-1]


def test_unknown_module_lists_valid_names_and_suggests(tmp_path, capsys):
    msg = run_bad(["export", "cbma"], tmp_path, capsys)
    assert "unknown module 'cbma'" in msg and "coordatt" in msg and "did you mean 'cbam'" in msg


@pytest.mark.parametrize("text", ["1x64x56", "1x64xbig", "1,64,56,56", "1x0x56x56"])
def test_malformed_or_wrong_rank_input(text, tmp_path, capsys):
    msg = run_bad(["export", "se", "--input", text], tmp_path, capsys)
    assert "expected" in msg and "got" in msg


def test_wrong_channel_count(tmp_path, capsys):
    msg = run_bad(["export", "se", "--input", "1x32x56x56"], tmp_path, capsys)
    assert "channels" in msg and "expected 64" in msg and "got 32" in msg


def test_channels_not_divisible_by_reduction(tmp_path, capsys):
    msg = run_bad(["export", "se", "--kwargs", '{"channels": 40}', "--input", "1x40x8x8"], tmp_path, capsys)
    assert "reduction=16" in msg and "got 40" in msg


def test_spd_odd_height(tmp_path, capsys):
    msg = run_bad(["export", "spd", "--input", "1x64x41x56"], tmp_path, capsys)
    assert "spd" in msg and "H=41" in msg and "multiple of 2" in msg


@pytest.mark.parametrize("opset", ["9", "12", "21"])
def test_opset_outside_supported_range(opset, tmp_path, capsys):
    msg = run_bad(["export", "cbam", "--opset", opset], tmp_path, capsys)
    assert "13..20" in msg and f"got {opset}" in msg


def test_opset_below_what_the_module_needs(tmp_path, capsys):
    msg = run_bad(["export", "deformconv", "--opset", "13"], tmp_path, capsys)
    assert "opset >= 19 (onnx) or >= 16 (decompose)" in msg and "plugin" in msg and "got opset 13" in msg


@pytest.mark.parametrize("lowering,opset", [("onnx", "17"), ("decompose", "13")])
def test_lowering_that_cannot_express_the_opset(lowering, opset, tmp_path, capsys):
    msg = run_bad(["export", "deformconv", "--deform-conv", lowering, "--opset", opset], tmp_path, capsys)
    assert f"deform_conv='{lowering}'" in msg and f"got opset {opset}" in msg


def test_exporter_that_cannot_honour_the_opset(tmp_path, capsys):
    msg = run_bad(["export", "cbam", "--exporter", "dynamo", "--opset", "17"], tmp_path, capsys)
    assert "dynamo" in msg and "opset >= 18" in msg and "got 17" in msg


def test_unknown_exporter_suggests(tmp_path, capsys):
    msg = run_bad(["export", "cbam", "--exporter", "dynamos"], tmp_path, capsys)
    assert "did you mean 'dynamo'" in msg


def test_output_directory_that_cannot_be_written(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    msg = run_bad(["export", "cbam", "--out", str(blocker / "sub")], tmp_path, capsys)
    assert "output directory must be writable" in msg and str(blocker / "sub") in msg
    assert blocker.read_text() == "not a directory"


def test_bad_kwargs_json(tmp_path, capsys):
    msg = run_bad(["export", "se", "--kwargs", "{channels: 3"], tmp_path, capsys)
    assert "--kwargs must be a JSON object" in msg

"""Bad option values (issue 18): one line naming the rule, the expected and the actual value, exit 2, before any
export. In-process (`attndeploy.cli.main.main`); `run_pipeline` fails the test if anything reaches it."""

from __future__ import annotations

import json

import pytest

from attndeploy.cli.main import main


@pytest.fixture(autouse=True)
def no_export(monkeypatch, tmp_path):
    """Run in an empty folder; exporting anything is a test failure."""
    from attndeploy.cli import export_cmd

    def refuse(*args, **kwargs):
        raise AssertionError("an export started: the option should have been refused first")

    monkeypatch.setattr(export_cmd, "run_pipeline", refuse)
    monkeypatch.setattr("attndeploy.recipes.run_pipeline", refuse)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def refused(args, capsys, *words):
    """`attndeploy ARGS` exits 2 with one `error:` line holding expected/got and `words`; with --json one object."""
    code = main(args)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "expected " in lines[0] and ", got " in lines[0], lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    if "--json" in args:
        error = json.loads(out)
        assert error["expected"] and error["actual"] and f"error: {error['error']}" == lines[0]
    return lines[0]


@pytest.mark.parametrize("args,words", [
    (["export", "cbam", "--int8-target", "abc"], ["--int8-target must be a number", "got 'abc'"]),
    (["export", "cbam", "--atol", "abc"], ["--atol must be a number", "got 'abc'"]),
    (["export", "cbam", "--rtol", "1e"], ["--rtol must be a number", "got '1e'"]),
    (["export", "yolov8n.yaml", "--batch", "x"], ["--batch must be an integer", "got 'x'"]),
    (["export", "cbam", "--opset", "17.0"], ["--opset must be an integer", "got '17.0'"]),
    (["export", "cbam", "--seed", "-1"], ["--seed", "0..2**63-1"]),
    (["bench", "se", "--threads", "x"], ["--threads must be an integer", "got 'x'"]),   # argparse's own type=int
    (["export", "cbam", "--atol", "nan"], ["--atol must be finite and >= 0", "got nan"]),
])
def test_non_numbers_say_expected_and_got(args, words, capsys):
    refused([*args, "--json"], capsys, *words)


@pytest.mark.parametrize("args,command", [(["run", "m.onnx", "--json"], "attndeploy run"),
                                          (["export", "cbam", "--jsn"], "attndeploy export")])
def test_an_option_a_command_does_not_have(args, command, capsys):
    line = refused(args, capsys, f"{command}: unrecognized arguments", "expected one of its options", "--input")
    assert "--recipe" in line if command == "attndeploy export" else "--backend" in line


def test_selftest_unknown_flag_says_expected_and_got(capsys):
    from attndeploy.selftest import main as selftest

    assert selftest(["--bogus"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unrecognized arguments: --bogus" in err
    assert "expected one of its options: --gpu, --help, --names, --out" in err and "got '--bogus'" in err


@pytest.mark.parametrize("text", ["640,", ",640", "640,480,320", "0", "-1", "640x", "abc", "99999"])
def test_imgsz_text_that_is_not_one_or_two_sizes(text, capsys):
    refused(["export", "yolov8n.yaml", "--imgsz", text], capsys, "--imgsz must be one size or H,W", repr(text))


def test_imgsz_rounding_is_ultralytics_and_said():
    """33 is kept as asked (the adapter rounds it up to the model's stride, as ultralytics, and notes it): the
    stride is known only once the model is built. The help says so."""
    from attndeploy.cli.export_options import settings_from_argv
    from attndeploy.options import by_name
    from attndeploy.settings import ExportSettings

    assert settings_from_argv(["yolov8n.yaml", "--imgsz", "33"]).imgsz == (33, 33)
    assert settings_from_argv(["yolov8n.yaml", "--imgsz", "480x640"]).imgsz == (480, 640)
    assert "rounded up" in by_name(ExportSettings)["imgsz"].help


def test_batch_is_a_size_check_not_the_allocators_error(capsys):
    line = refused(["export", "yolov8n.yaml", "--batch", "65536", "--json"], capsys,
                   "65536x3x640x640", "half of this machine's memory")
    assert "batch" in line
    refused(["export", "yolov8n.yaml", "--batch", "0"], capsys, "--batch is out of range", "1..65536")


@pytest.mark.parametrize("target", ["1", "1.0", "0", "-0.5", "1.5", "inf"])
def test_an_int8_target_no_graph_can_meet_is_a_usage_error(target, capsys, no_export):
    (no_export / "cal.npy").write_bytes(b"")
    refused(["export", "cbam", "--precision", "int8", "--calib", "cal.npy", "--int8-target", target], capsys,
            "--int8-target must be a cosine a quantized graph can reach", "(0, 1)")


@pytest.mark.parametrize("patterns,bad", [("/model.9/Conv", "/model.9/Conv"), ("model..9", "model..9"),
                                          ("model.[9", "model.[9"), ("model.9.*,a b", "a b"), ("*.softmax,.x", ".x")])
def test_keep_fp32_patterns_that_do_not_parse(patterns, bad, capsys):
    line = refused(["export", "cbam", "--precision", "fp16", "--keep-fp32", patterns], capsys,
                   f"--keep-fp32 pattern {bad!r} does not parse", "dotted module path")
    assert ("ONNX node names" in line) == ("/" in bad)


def test_keep_fp32_patterns_that_parse():
    from attndeploy.cli.export_options import settings_from_argv

    settings = settings_from_argv(["cbam", "--precision", "fp16", "--keep-fp32",
                                   "model.9.*,*.softmax,<root>,model.[0-3].cv?,channel_attention"])
    assert settings.keep_fp32 == ("model.9.*", "*.softmax", "<root>", "model.[0-3].cv?", "channel_attention")


def _recipe(folder, out: str, zoo: bool = False) -> str:
    path = folder / "r.toml"
    table = f'[zoo]\nmodules = ["se"]\nout = "{out}"\n' if zoo else \
        f'[model]\nsource = "se"\n[export]\nout = "{out}"\n'
    path.write_text(table)
    return str(path)


@pytest.mark.parametrize("zoo", [False, True], ids=["model", "zoo"])
@pytest.mark.parametrize("make,out,words", [
    (lambda d: (d / "blocker").write_text("a file"), "blocker", ["must be a directory", "blocker"]),
    (lambda d: (d / "blocker").write_text("a file"), "blocker/sub", ["output directory must be writable",
                                                                     "not a directory"]),
    (lambda d: (d / "o" / "report.json").mkdir(parents=True), "o", ["must not be a directory", "report.json"]),
], ids=["out-is-a-file", "out-under-a-file", "report-json-is-a-folder"])
def test_a_recipe_whose_out_cannot_be_written_is_refused_before_any_export(make, out, words, zoo, capsys, no_export):
    make(no_export)
    before = sorted(p.name for p in no_export.rglob("*"))
    if zoo and out == "o":  # a zoo writes <out>/<module>/report.json
        (no_export / "o" / "report.json").rmdir()
        (no_export / "o" / "se" / "report.json").mkdir(parents=True)
        before = sorted(p.name for p in no_export.rglob("*"))
    refused(["export", "--recipe", _recipe(no_export, out, zoo)], capsys, *words)
    assert sorted(p.name for p in no_export.rglob("*")) == sorted({*before, "r.toml"})


@pytest.mark.parametrize("flag", ["--calib", "--inputs"])
def test_a_named_pipe_as_data_is_refused_before_reading_it(flag, capsys, no_export):
    import os

    os.mkfifo(no_export / "pipe.npy")
    more = ["--precision", "int8"] if flag == "--calib" else []
    refused(["export", "cbam", *more, flag, "pipe.npy"], capsys, f"{flag} must be a regular file or a folder",
            "reading it could block")

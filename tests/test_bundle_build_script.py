"""build_engine.sh: bash accepts it, it picks the line for the TensorRT it finds, and each line's trtexec arguments
(input name, min/opt/max shapes, precision flags per generation) are the right ones, run against a fake trtexec."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from attndeploy.bundle import write_build_script
from attndeploy.errors import UsageError
from attndeploy.precision.fp16 import convert_onnx_to_fp16
from tests.onnx_graphs import conv_relu, conv_softmax, nms_head, qdq_conv, two_inputs

SHAPES = ((1, 3, 16, 16), (2, 3, 32, 32), (4, 3, 64, 64))
# A stand-in for trtexec: `--help` prints the banner for $FAKE_TRT (e.g. 100300), a build records its arguments.
FAKE_TRTEXEC = f"""#!{sys.executable}
import json, os, sys
if sys.argv[1:] == ["--help"]:
    if os.environ.get("FAKE_TRT"):
        print("&&&& RUNNING TensorRT.trtexec [TensorRT v" + os.environ["FAKE_TRT"] + "] # trtexec --help")
    sys.exit(0)
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
"""


@pytest.fixture
def fake_tools(tmp_path):
    """A bin folder with the fake trtexec, and dpkg-query / python3 that find no TensorRT."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "trtexec").write_text(FAKE_TRTEXEC)
    (bin_dir / "dpkg-query").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "python3").write_text("#!/bin/sh\nexit 1\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    return bin_dir


def run_script(script: Path, bin_dir: Path, version: str | None, *args: str) -> tuple[int, list[list[str]], str]:
    """Run `script` with the fake tools first on PATH; (exit code, the argument lists trtexec got, stderr)."""
    log = script.parent / "trtexec.log"
    log.unlink(missing_ok=True)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_LOG": str(log)}
    env.pop("TRTEXEC", None)
    env.pop("FAKE_TRT", None)
    if version:
        env["FAKE_TRT"] = version
    done = subprocess.run(["bash", str(script), *args], env=env, capture_output=True, text=True, timeout=60)
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return done.returncode, calls, done.stderr


@pytest.fixture
def bundle(tmp_path):
    """A folder with an fp32 graph (m.onnx) and its mixed fp16 twin (m.fp16.onnx, Softmax kept fp32)."""
    folder = tmp_path / "bundle"
    folder.mkdir()
    conv_softmax(folder / "m.onnx")
    onnx.save(convert_onnx_to_fp16(onnx.load(str(folder / "m.onnx"))), str(folder / "m.fp16.onnx"))
    return folder


def shape_args(name: str) -> list[str]:
    return [f"--{flag}={name}:{'x'.join(map(str, s))}" for flag, s in zip(("minShapes", "optShapes", "maxShapes"),
                                                                      ((1, 3, 8, 8), (2, 3, 8, 8), (4, 3, 8, 8)))]


def test_script_passes_bash_n_and_names_the_input_and_its_shapes(bundle):
    script = write_build_script([bundle / "m.onnx", bundle / "m.fp16.onnx"], bundle, "x", (1, 3, 8, 8),
                                (2, 3, 8, 8), (4, 3, 8, 8))
    assert script == bundle / "build_engine.sh" and os.access(script, os.X_OK)
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    text = script.read_text()
    for key, jetpack in (("8.6", "JetPack 6.0"), ("10", "JetPack 6.1 / 6.2"), ("11", "JetPack >= 7.2.2")):
        block = text.split(f"\n  {key})\n", 1)[1].split(";;", 1)[0]
        assert jetpack in block
        for arg in shape_args("x"):
            assert block.count(arg) == 2  # one per graph
        assert f"--timingCacheFile=timing.trt{key}.cache" in block


@pytest.mark.parametrize(("banner", "fp32", "fp16"), [
    ("8602", ["--noTF32"], ["--fp16", "--precisionConstraints=obey", "--layerPrecisions=attn/softmax:fp32", "--noTF32"]),
    ("100300", ["--noTF32"], ["--stronglyTyped", "--noTF32"]),
    ("110401", ["--stronglyTyped", "--noTF32"], ["--stronglyTyped", "--noTF32"]),
])
def test_script_builds_each_graph_with_the_flags_of_the_tensorrt_it_finds(bundle, fake_tools, banner, fp32, fp16):
    script = write_build_script([bundle / "m.onnx", bundle / "m.fp16.onnx"], bundle, "x", (1, 3, 8, 8),
                                (2, 3, 8, 8), (4, 3, 8, 8))
    code, calls, err = run_script(script, fake_tools, banner)
    assert code == 0, err
    key = {"8602": "8.6", "100300": "10", "110401": "11"}[banner]
    cache = f"--timingCacheFile=timing.trt{key}.cache"
    detailed = "--profilingVerbosity=detailed"  # layer precisions readable by `attndeploy verify`
    assert calls == [["--onnx=m.onnx", "--saveEngine=m.engine", cache, detailed, *shape_args("x"), *fp32],
                     ["--onnx=m.fp16.onnx", "--saveEngine=m.fp16.engine", cache, detailed, *shape_args("x"), *fp16]]


@pytest.mark.parametrize(("trt", "flags"), [("8.6", ["--int8", "--noTF32"]), ("10", ["--stronglyTyped", "--noTF32"]),
                                            ("11", ["--stronglyTyped", "--noTF32"])])
def test_a_qdq_graph_builds_int8_on_8_6_and_strongly_typed_later(tmp_path, fake_tools, trt, flags):
    qdq_conv(tmp_path / "q.onnx")
    script = write_build_script([tmp_path / "q.onnx"], tmp_path, "x", (1, 3, 16, 16), (1, 3, 16, 16), (2, 3, 16, 16))
    code, calls, err = run_script(script, fake_tools, None, "--trt", trt)
    assert code == 0, err
    assert calls[0][-len(flags):] == flags and "--fp16" not in calls[0]


def test_trt_onnx_and_extra_flags(bundle, fake_tools):
    script = write_build_script([bundle / "m.onnx", bundle / "m.fp16.onnx"], bundle, "x", (1, 3, 8, 8),
                                (2, 3, 8, 8), (4, 3, 8, 8))
    code, calls, err = run_script(script, fake_tools, "8602", "--trt", "11", "--onnx", "m.fp16.onnx", "--",
                                  "--verbose", "--skipInference")
    assert code == 0, err
    assert len(calls) == 1 and calls[0][0] == "--onnx=m.fp16.onnx"
    assert calls[0][-4:] == ["--stronglyTyped", "--noTF32", "--verbose", "--skipInference"]
    code, calls, err = run_script(script, fake_tools, "8602", "--onnx", "other.onnx")
    assert code == 2 and not calls and "expected one of m.onnx m.fp16.onnx, got other.onnx" in err


def test_a_tensorrt_without_a_line_or_none_at_all_is_refused(bundle, fake_tools):
    script = write_build_script([bundle / "m.onnx"], bundle, "x", (1, 3, 8, 8), (2, 3, 8, 8), (4, 3, 8, 8))
    code, calls, err = run_script(script, fake_tools, "8501")
    assert (code, calls) == (2, []) and "got TensorRT 8.5.1" in err
    code, calls, err = run_script(script, fake_tools, None)
    assert (code, calls) == (2, []) and "TensorRT must be installed" in err
    code, calls, err = run_script(script, fake_tools, None, "--trt", "9")
    assert (code, calls) == (2, []) and "--trt must be 8.6, 10 or 11" in err


def test_a_graph_the_parser_refuses_gets_a_refusal_line_for_that_version_only(tmp_path, fake_tools):
    conv_relu(tmp_path / "m18.onnx", opset=18)  # TensorRT 8.6's parser takes opsets <= 17
    script = write_build_script([tmp_path / "m18.onnx"], tmp_path, "x", (1, 3, 8, 8), (1, 3, 8, 8), (2, 3, 8, 8))
    code, calls, err = run_script(script, fake_tools, "8602")
    assert (code, calls) == (1, []) and "TensorRT 8.6's ONNX parser refuses m18.onnx" in err and "opset" in err
    code, calls, err = run_script(script, fake_tools, "100300")
    assert code == 0 and len(calls) == 1, err


def test_a_static_graph_gets_no_shape_flags(tmp_path, fake_tools):
    conv_relu(tmp_path / "s.onnx", batch=1, hw=8)
    script = write_build_script([tmp_path / "s.onnx"], tmp_path, "x", (1, 3, 8, 8), (1, 3, 8, 8), (1, 3, 8, 8))
    code, calls, err = run_script(script, fake_tools, "100300")
    assert code == 0, err
    assert calls == [["--onnx=s.onnx", "--saveEngine=s.engine", "--timingCacheFile=timing.trt10.cache",
                      "--profilingVerbosity=detailed", "--noTF32"]]


def test_an_nms_graph_gets_the_parser_notes(tmp_path, fake_tools):
    nms_head(tmp_path / "nms.onnx")
    script = write_build_script([tmp_path / "nms.onnx"], tmp_path, "boxes", (1, 100, 4), (1, 100, 4), (8, 100, 4))
    text = script.read_text()
    assert "# NonMaxSuppression: parsed natively on 8.6, 10 and 11" in text and "5000 boxes" in text
    code, calls, err = run_script(script, fake_tools, "100300")
    assert code == 0 and calls[0][4:7] == ["--minShapes=boxes:1x100x4", "--optShapes=boxes:1x100x4",
                                           "--maxShapes=boxes:8x100x4"], err


@pytest.mark.parametrize(("shapes", "rule"), [
    (((1, 3, 8), (1, 3, 8), (1, 3, 8)), "rank"),
    (((1, 4, 8, 8), (1, 4, 8, 8), (1, 4, 8, 8)), "static dims"),
    (((2, 3, 8, 8), (1, 3, 8, 8), (4, 3, 8, 8)), "min <= opt <= max"),
    (((0, 3, 8, 8), (1, 3, 8, 8), (4, 3, 8, 8)), "positive"),
])
def test_shapes_that_do_not_fit_the_input_are_refused(bundle, shapes, rule):
    with pytest.raises(UsageError, match=rule):
        write_build_script([bundle / "m.onnx"], bundle, "x", *shapes)
    assert not (bundle / "build_engine.sh").exists()


def test_a_wrong_input_a_second_dynamic_input_or_a_graph_elsewhere_is_refused(tmp_path, bundle):
    with pytest.raises(UsageError, match="one dynamic input"):
        write_build_script([bundle / "m.onnx"], bundle, "images", *SHAPES)
    two_inputs(bundle / "two.onnx")
    with pytest.raises(UsageError, match="one dynamic input"):
        write_build_script([bundle / "two.onnx"], bundle, "a", (1, 4), (1, 4), (2, 4))
    shutil.copy(bundle / "m.onnx", tmp_path / "elsewhere.onnx")
    with pytest.raises(UsageError, match="must lie in the bundle folder"):
        write_build_script([tmp_path / "elsewhere.onnx"], bundle, "x", (1, 3, 8, 8), (1, 3, 8, 8), (1, 3, 8, 8))

"""`attndeploy verify` on bundles `attndeploy export` wrote: clean ones pass (exit 0) with the export's own budgets,
one whose graph has a Conv weight channel scaled by 1.01 fails (exit 1) naming the output and the module, and the
bundle itself holds what the device needs (sizes bounded and reported)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from attndeploy.bundle.manifest import load_manifest
from tests.bundles import NUDGES, cbam_bundle, cbam_fp16_bundle, nudged_copy, yolo_bundle, yolo_env  # noqa: F401
from tests.test_bundle_triton import io_of, parse


def verify(cli, capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()  # what a fixture's export printed
    code = cli(["verify", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("which", ["cbam_bundle", "cbam_fp16_bundle", "yolo_bundle"])
def test_a_clean_bundle_verifies_with_the_exports_budget(cli, capsys, request, which):
    bundle = request.getfixturevalue(which)
    code, out, err = verify(cli, capsys, bundle, "--json")
    assert code == 0, err
    result = json.loads(out)
    report = json.loads((bundle / "report.json").read_text())
    final = report["parities"][f"{report['precision']}/onnxruntime-cpu"]
    assert result["passed"] and result["precision"] == report["precision"] and result["backend"] == "onnxruntime-cpu"
    assert result["parity"]["budget"] == final["budget"]  # the budget the export judged the graph by
    assert result["parity"]["shapes"] == report["bundle"]["truth_shapes"] and len(result["parity"]["shapes"]) >= 2
    if which == "cbam_fp16_bundle":
        assert result["parity"]["budget"]["kind"] == "cosine" and result["parity"]["budget"]["min_cosine"] == 0.9999
        assert result["graph"].endswith("cbam.fp16.onnx") and result["parity"]["reduced_fraction"] == 1.0


@pytest.mark.parametrize("which", ["cbam_bundle", "yolo_bundle"])
def test_a_nudged_conv_fails_and_names_the_output_and_the_module(cli, capsys, request, tmp_path, which):
    bundle = request.getfixturevalue(which)
    name = json.loads((bundle / "bundle.json").read_text())["name"]
    node, module = NUDGES[name]
    nudged = nudged_copy(bundle, tmp_path / "nudged", node)
    code, out, err = verify(cli, capsys, nudged)
    assert code == 1
    output = json.loads((bundle / "bundle.json").read_text())["output_names"][0]
    failed = err.strip().splitlines()[-1]
    assert failed.startswith("verify failed (fp32/onnxruntime-cpu): ") and f"output {output!r} differs" in failed
    assert f"diverges first at `{module}` (Conv2d" in failed and "its ONNX nodes: 1 Conv" in failed
    assert f"diverges first at `{module}`" in out and "FAIL" in out
    code, out, _ = verify(cli, capsys, nudged, "--json")
    result = json.loads(out)  # exactly one JSON object on stdout
    assert code == 1 and not result["passed"] and result["localisation"]["path"] == module
    assert result["localisation"]["nodes"] == [{"name": node, "op_type": "Conv"}]
    assert any("sha256 differs" in n for n in result["notes"])


def test_the_bundle_holds_what_the_device_needs(yolo_bundle):
    folder, manifest = load_manifest(yolo_bundle)
    report = json.loads((folder / "report.json").read_text())["bundle"]
    listed = {f["path"]: f["bytes"] for f in report["files"]}
    assert report["total_bytes"] == sum(listed.values()) and all((folder / p).stat().st_size == b
                                                                  for p, b in listed.items())
    assert {"bundle.json", "yolov8n-cbam.onnx", "truth.npz", "modules.npz", "build_engine.sh", "labels.txt",
            "metadata.json", "triton/yolov8n-cbam/config.pbtxt", "triton/yolov8n-cbam/1/model.onnx"} <= set(listed)
    # the engine's shapes, inside the shape rule (multiples of 32): the example, the profile's min; its max (4x the
    # largest parity probe's elements) left out, said so
    assert manifest.profile == {"min": (1, 3, 32, 32), "opt": (1, 3, 320, 320), "max": (1, 3, 640, 640)}
    assert manifest.truth_shapes == [(1, 3, 320, 320), (1, 3, 32, 32)]
    assert any("max probe 1x3x640x640 left out" in n and "over 2x" in n for n in manifest.notes), manifest.notes
    assert manifest.modules_shape == (1, 3, 32, 32) and report["modules"]["events_with_tensors"] > 100
    assert set(manifest.budgets) == {"fp32", "fp16", "int8"} and manifest.budgets["fp32"].kind == "float64"
    labels = (folder / "labels.txt").read_text().splitlines()
    assert labels[:2] == ["thing0", "thing1"] and len(labels) == 80
    assert json.loads((folder / "metadata.json").read_text())["stride"] == 32
    pb2, config = parse(folder / "triton" / "yolov8n-cbam")
    assert io_of(config, pb2) == ([("images", "TYPE_FP32", [-1, 3, -1, -1])], [("output0", "TYPE_FP32", [-1, 84, -1])])
    script = (folder / "build_engine.sh").read_text()
    assert subprocess.run(["bash", "-n", str(folder / "build_engine.sh")]).returncode == 0
    assert "--minShapes=images:1x3x32x32" in script and "--maxShapes=images:1x3x640x640" in script


def test_a_probe_too_large_is_left_out_with_a_note(cbam_bundle):
    """cbam's profile max (4x64x112x112, ~49 MiB with its float64 outputs) passes the 32 MiB per probe: left out,
    and said so."""
    folder, manifest = load_manifest(cbam_bundle)
    assert manifest.profile["max"] == (4, 64, 112, 112)
    assert manifest.truth_shapes == [(1, 64, 56, 56), (1, 64, 14, 14)]
    assert any("max probe 4x64x112x112 left out" in n and "32 MiB" in n for n in manifest.notes)
    report = json.loads((folder / "report.json").read_text())
    assert report["bundle"]["notes"] == manifest.notes and report["bundle"]["truth_bytes"] < 32 << 20


def test_no_bundle_when_asked_not_to(cli, capsys, tmp_path):
    assert cli(["export", "se", "--input", "1x64x8x8", "--out", str(tmp_path), "--no-bundle"]) == 0
    assert not (tmp_path / "bundle.json").exists() and not (tmp_path / "truth.npz").exists()
    assert json.loads((tmp_path / "report.json").read_text())["bundle"] == {}


def test_no_bundle_beside_a_rejected_graph(tmp_path, cbam_bundle):
    """A rejected graph has nothing to deploy; a bundle an earlier export left in the folder goes too."""
    import attndeploy

    shutil.copy(cbam_bundle / "bundle.json", tmp_path / "bundle.json")
    res = attndeploy.export("se", (1, 64, 8, 8), tmp_path / "se.onnx", atol=1e-12, rtol=0.0)  # ORT's rounding fails
    assert not res.passed and res.bundle == {} and not (tmp_path / "bundle.json").exists()
    assert "no device bundle: a graph was rejected (nothing to deploy)" in res.notes


def _corrupt(bundle, tmp_path, file, text):
    copy = tmp_path / "bad"
    shutil.copytree(bundle, copy)
    (copy / file).write_text(text)
    return copy


@pytest.mark.parametrize(("file", "text", "message"), [
    ("bundle.json", "{not json", "error: bundle.json must be readable JSON"),
    ("bundle.json", '{"format": "something-else/1"}', "error: bundle.json must be an attndeploy bundle manifest"),
    ("bundle.json", '{"format": "attndeploy-bundle/1", "name": "x"}', "error: bundle.json must hold every field"),
    ("truth.npz", "not a zip", "error: the truth file must be readable"),
])
def test_a_bad_bundle_is_refused_with_exit_2(cli, capsys, tmp_path, cbam_bundle, file, text, message):
    code, out, err = verify(cli, capsys, _corrupt(cbam_bundle, tmp_path, file, text), "--json")
    assert code == 2 and err.strip().splitlines()[-1].startswith(message), err
    assert json.loads(out)["error"].startswith(message.removeprefix("error: "))


def test_a_manifest_field_of_the_wrong_kind_is_named(cli, capsys, tmp_path, cbam_bundle):
    data = json.loads((cbam_bundle / "bundle.json").read_text())
    data["graphs"][0]["file"] = "../../etc/passwd"
    code, _, err = verify(cli, capsys, _corrupt(cbam_bundle, tmp_path, "bundle.json", json.dumps(data)))
    assert code == 2 and "bundle.json's graph file must be a path inside the bundle" in err
    data["graphs"][0]["file"], data["budgets"]["fp32"]["kind"] = "cbam.onnx", "lenient"
    (tmp_path / "bad" / "bundle.json").write_text(json.dumps(data))
    code, _, err = verify(cli, capsys, tmp_path / "bad")
    assert code == 2 and "bundle.json's fp32 budget must be a verdict budget" in err


def test_a_truth_from_another_bundle_is_refused(cli, capsys, tmp_path, cbam_bundle, yolo_bundle):
    copy = tmp_path / "mixed"
    shutil.copytree(cbam_bundle, copy)
    shutil.copy(yolo_bundle / "truth.npz", copy / "truth.npz")
    code, _, err = verify(cli, capsys, copy)
    assert code == 2 and "error: the truth file must be the bundle's" in err


@pytest.mark.parametrize(("args", "message"), [
    (["{missing}"], "error: BUNDLE must be a bundle folder"),
    (["{bundle}", "--backend", "tensorflow"], "error: unknown backend 'tensorflow'"),
    (["{bundle}", "--backend", "tensorrt"], "error: --backend tensorrt runs the graph's engine"),
    (["{bundle}", "--engine", "{bundle}/cbam.onnx"], "error: --engine must be a TensorRT engine file"),
    (["{bundle}", "--onnx", "{bundle}/truth.npz"], "error: the graph to verify must be an ONNX file"),
    (["{bundle}", "--engine", "{bundle}/x.engine", "--onnx", "{bundle}/cbam.onnx"],
     "error: attndeploy verify: --onnx and --engine cannot be given together"),
    (["{bundle}", "--engine", "{engine}", "--backend", "onnxruntime"], "error: --engine runs in TensorRT"),
    (["{bundle}", "--engine", "{engine}"], "error: TensorRT is not installed"),
])
def test_bad_usage_is_one_line_with_exit_2(cli, capsys, tmp_path, cbam_bundle, args, message):
    pytest.importorskip("onnxruntime")
    engine = tmp_path / "cbam.engine"
    engine.write_bytes(b"not an engine")
    if "TensorRT is not installed" in message:
        from attndeploy.tensorrt._api import tensorrt_unavailable

        if tensorrt_unavailable() is None:
            pytest.skip("TensorRT is installed here")
    filled = [a.replace("{bundle}", str(cbam_bundle)).replace("{missing}", str(tmp_path / "none"))
              .replace("{engine}", str(engine)) for a in args]
    code, _, err = verify(cli, capsys, *filled)
    assert code == 2 and err.strip().splitlines()[-1].startswith(message), err

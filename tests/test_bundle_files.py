"""labels.txt, the metadata sidecar and the bundle listing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from attndeploy.bundle import describe_bundle, format_listing, list_bundle, write_labels, write_metadata
from attndeploy.errors import UsageError


def test_labels_are_written_in_index_order(tmp_path):
    path = write_labels(tmp_path, {2: "car", 0: "person", 1: "bicycle"})  # ultralytics' model.names
    assert path == tmp_path / "labels.txt"
    assert path.read_text() == "person\nbicycle\ncar\n"
    assert write_labels(tmp_path / "b", ["a b", "c"]).read_text() == "a b\nc\n"


@pytest.mark.parametrize(("names", "rule"), [({0: "a", 2: "c"}, "without gaps"), (["a", "b\nc"], "single-line"),
                                             (["a", " "], "non-empty"), ([], "at least one")])
def test_bad_class_names_are_refused(tmp_path, names, rule):
    with pytest.raises(UsageError, match=rule):
        write_labels(tmp_path, names)
    assert not (tmp_path / "labels.txt").exists()


def test_metadata_is_a_json_sidecar(tmp_path):
    meta = {"task": "detect", "stride": np.int64(32), "imgsz": (640, 640), "names": {"0": "person"},
            "conf": np.float32(0.25), "bad": float("nan")}
    path = write_metadata(tmp_path, meta)
    assert path == tmp_path / "metadata.json"
    assert json.loads(path.read_text()) == {"task": "detect", "stride": 32, "imgsz": [640, 640],
                                            "names": {"0": "person"}, "conf": 0.25, "bad": "nan"}


@pytest.mark.parametrize(("meta", "filename", "rule"), [
    ({"model": object()}, "metadata.json", "JSON values"), ({1: "a"}, "metadata.json", "keys must be strings"),
    ({"a": 1}, "../m.json", ".json file name"), ({"a": 1}, "model.engine", ".json file name"),
])
def test_metadata_that_is_not_json_or_not_a_sidecar_is_refused(tmp_path, meta, filename, rule):
    with pytest.raises(UsageError, match=rule):
        write_metadata(tmp_path, meta, filename)
    assert list(tmp_path.iterdir()) == []


def test_the_listing_has_every_file_with_its_size(tmp_path):
    (tmp_path / "triton" / "m" / "1").mkdir(parents=True)
    (tmp_path / "m.onnx").write_bytes(b"x" * 3000)
    (tmp_path / "triton" / "m" / "1" / "model.onnx").write_bytes(b"x" * 3000)
    (tmp_path / "labels.txt").write_text("a\n")
    (tmp_path / ".labels.txt.123-abc.tmp").write_text("left by a killed writer")
    (tmp_path / "link.onnx").symlink_to(tmp_path / "m.onnx")
    files = list_bundle(tmp_path)
    assert [(f.path, f.bytes) for f in files] == [("labels.txt", 2), ("m.onnx", 3000), ("triton/m/1/model.onnx", 3000)]
    assert describe_bundle(tmp_path)["total_bytes"] == 6002
    lines = format_listing(files)
    assert lines[1].split() == ["m.onnx", "2.9", "KiB"] and lines[-1].split() == ["total", "5.9", "KiB"]
    with pytest.raises(UsageError, match="must exist"):
        list_bundle(tmp_path / "missing")

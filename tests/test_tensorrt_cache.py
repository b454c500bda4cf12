"""Engine cache: keys over everything that changes an engine, atomic engine + sidecar, stale refusal."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from attndeploy import fileio
from attndeploy.errors import UsageError
from attndeploy.tensorrt import cache
from attndeploy.tensorrt.cache import BuildSettings, Platform

ONNX = b"onnx-bytes-of-cbam"
ENGINE = b"\x00serialized-engine\xff" * 64
H100 = Platform("10.13.0.35", "NVIDIA H100 80GB HBM3", "9.0")
PROFILE = {"input": {"min": [1, 64, 14, 14], "opt": [1, 64, 56, 56], "max": [4, 64, 112, 112]}}
SETTINGS = BuildSettings(precision="fp16", workspace_mb=1024, profile=PROFILE,
                         keep_fp32_ops=("LayerNormalization", "Softmax"))


def write(tmp_path: Path, engine: bytes = ENGINE, platform: Platform = H100,
          settings: BuildSettings = SETTINGS) -> tuple[Path, str]:
    key = cache.cache_key(ONNX, platform, settings)
    path = tmp_path / "cbam.fp16.engine"
    cache.write_entry(path, engine, cache.new_metadata(key, ONNX, engine, platform, settings))
    return path, key


def test_key_is_deterministic_and_changes_with_every_input(tmp_path):
    base = cache.cache_key(ONNX, H100, SETTINGS)
    assert base == cache.cache_key(ONNX, H100, dataclasses.replace(SETTINGS))
    lib = tmp_path / "libplugin.so"
    lib.write_bytes(b"plugin v1")
    variants = {
        "onnx": (ONNX + b" ", H100, SETTINGS),
        "tensorrt": (ONNX, dataclasses.replace(H100, tensorrt_version="10.12.0.36"), SETTINGS),
        "gpu": (ONNX, dataclasses.replace(H100, gpu_name="NVIDIA H100 PCIe"), SETTINGS),
        "capability": (ONNX, dataclasses.replace(H100, compute_capability="8.9"), SETTINGS),
        "precision": (ONNX, H100, dataclasses.replace(SETTINGS, precision="fp32")),
        "precision_in_graph": (ONNX, H100, dataclasses.replace(SETTINGS, precision_in_graph=True)),
        "tf32": (ONNX, H100, dataclasses.replace(SETTINGS, tf32=True)),
        "workspace": (ONNX, H100, dataclasses.replace(SETTINGS, workspace_mb=2048)),
        "profile": (ONNX, H100, dataclasses.replace(
            SETTINGS, profile={"input": {**PROFILE["input"], "max": [8, 64, 112, 112]}})),
        "plugins": (ONNX, H100, dataclasses.replace(SETTINGS, plugins=cache.plugin_fingerprints([lib]))),
        "strongly_typed": (ONNX, H100, dataclasses.replace(SETTINGS, strongly_typed=True)),
        "constraints": (ONNX, H100, dataclasses.replace(SETTINGS, precision_constraints="prefer")),
        "keep_fp32_ops": (ONNX, H100, dataclasses.replace(SETTINGS, keep_fp32_ops=("Softmax",))),
    }
    keys = {name: cache.cache_key(*args) for name, args in variants.items()}
    assert base not in keys.values()
    assert len(set(keys.values())) == len(keys)
    lib.write_bytes(b"plugin v2")  # same path, rebuilt library
    assert cache.cache_key(*variants["plugins"]) != cache.cache_key(
        ONNX, H100, dataclasses.replace(SETTINGS, plugins=cache.plugin_fingerprints([lib])))


def test_settings_are_validated(tmp_path):
    with pytest.raises(UsageError, match="precision"):
        BuildSettings(precision="fp8")
    with pytest.raises(UsageError, match="workspace_mb"):
        BuildSettings(workspace_mb=0)
    with pytest.raises(UsageError, match="plugin library must exist"):
        cache.plugin_fingerprints([tmp_path / "missing.so"])


def test_entry_round_trip_and_hit(tmp_path):
    path, key = write(tmp_path)
    assert path.read_bytes() == ENGINE
    meta = json.loads(cache.sidecar_path(path).read_text())
    assert cache.sidecar_path(path).name == "cbam.fp16.engine.json"
    assert meta["format"] == cache.FORMAT and meta["key"] == key and meta["engine_size"] == len(ENGINE)
    assert meta["platform"] == dataclasses.asdict(H100) and meta["settings"]["precision"] == "fp16"
    assert meta["settings"]["tf32"] is False
    found = cache.lookup(path, key, H100)
    assert found.hit and found.metadata is not None and found.metadata.platform == H100
    assert not list(tmp_path.glob(".*.tmp"))


def test_lookup_refuses_stale_and_changed_entries(tmp_path):
    path, key = write(tmp_path)
    other_trt = dataclasses.replace(H100, tensorrt_version="10.14.1.48")
    found = cache.lookup(path, cache.cache_key(ONNX, other_trt, SETTINGS), other_trt)
    assert not found.hit and "built by TensorRT 10.13.0.35, this is TensorRT 10.14.1.48" in found.reason
    a100 = Platform("10.13.0.35", "NVIDIA A100-SXM4-80GB", "8.0")
    found = cache.lookup(path, cache.cache_key(ONNX, a100, SETTINGS), a100)
    assert not found.hit and "sm 9.0" in found.reason and "sm 8.0" in found.reason
    found = cache.lookup(path, cache.cache_key(ONNX + b"changed", H100, SETTINGS), H100)
    assert not found.hit and "changed" in found.reason
    assert not cache.lookup(tmp_path / "none.engine", key, H100).hit


def test_check_compatible_names_both_platforms(tmp_path):
    path, _ = write(tmp_path)
    meta = cache.read_metadata(path)
    cache.check_compatible(path, meta, H100)
    with pytest.raises(UsageError) as err:
        cache.check_compatible(path, meta, dataclasses.replace(H100, tensorrt_version="8.6.1"))
    text = str(err.value)
    assert "cannot run here" in text and "TensorRT 8.6.1" in text and "10.13.0.35" in text and "rebuild" in text
    same_sm = dataclasses.replace(H100, gpu_name="NVIDIA H100 PCIe")
    with pytest.raises(UsageError, match="NVIDIA H100 PCIe"):
        cache.check_compatible(path, meta, same_sm)
    cache.check_compatible(path, meta, same_sm, strict_gpu_name=False)


def test_truncated_or_corrupt_engines_are_refused(tmp_path):
    path, key = write(tmp_path)
    meta = cache.read_metadata(path)
    with pytest.raises(UsageError, match="truncated"):
        cache.verify_engine_bytes(path, ENGINE[:100], meta)
    corrupt = bytearray(ENGINE)
    corrupt[7] ^= 0xFF
    with pytest.raises(UsageError, match="corrupt"):
        cache.verify_engine_bytes(path, bytes(corrupt), meta)
    path.write_bytes(ENGINE[:-1])
    found = cache.lookup(path, key, H100)
    assert not found.hit and "unusable" in found.reason


def test_sidecar_problems_are_usage_errors(tmp_path):
    path, _ = write(tmp_path)
    side = cache.sidecar_path(path)
    side.write_text("{not json")
    with pytest.raises(UsageError, match="valid JSON"):
        cache.read_metadata(path)
    side.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(UsageError, match="attndeploy's sidecar"):
        cache.read_metadata(path)
    side.write_text(json.dumps({"format": cache.FORMAT, "format_version": cache.FORMAT_VERSION, "key": "k"}))
    with pytest.raises(UsageError, match="incomplete"):
        cache.read_metadata(path)
    side.unlink()
    with pytest.raises(UsageError, match="metadata sidecar"):
        cache.read_metadata(path)


def test_failed_write_leaves_no_temp_and_no_mismatched_sidecar(tmp_path, monkeypatch):
    path, key = write(tmp_path)  # an older, valid entry
    real_write = Path.write_bytes

    def half_then_fail(self: Path, data: bytes) -> int:
        real_write(self, data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", half_then_fail)
    new_engine = b"new engine " * 100
    meta = cache.new_metadata("other-key", ONNX, new_engine, H100, SETTINGS)
    with pytest.raises(OSError, match="No space left"):
        cache.write_entry(path, new_engine, meta)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cbam.fp16.engine"]  # no temp, no stale sidecar
    assert path.read_bytes() == ENGINE  # the old engine is untouched (rename never happened)
    assert not cache.lookup(path, key, H100).hit  # without its sidecar it is a miss, not a wrong hit


def test_failed_sidecar_write_is_a_miss(tmp_path, monkeypatch):
    real = fileio.write_json_atomic

    def fail(final: Path, obj: object) -> Path:
        raise OSError(5, "I/O error")

    monkeypatch.setattr(cache, "write_json_atomic", fail)
    with pytest.raises(OSError):
        write(tmp_path)
    monkeypatch.setattr(cache, "write_json_atomic", real)
    path = tmp_path / "cbam.fp16.engine"
    assert path.is_file() and not cache.sidecar_path(path).exists()
    assert not cache.lookup(path, "any", H100).hit
    assert not list(tmp_path.glob(".*.tmp"))


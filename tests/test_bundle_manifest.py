"""The bundle's manifest and module references: written and read back without pickle or torch, identical tensors
stored once, and anything else refused with a `UsageError` naming what is wrong."""

from __future__ import annotations

import json

import numpy as np
import pytest

from attndeploy.bundle.manifest import BundleGraph, Manifest, load_manifest, manifest_from_dict
from attndeploy.bundle.references import ModuleInfo, ModuleReferences
from attndeploy.errors import UsageError
from attndeploy.events import Event
from attndeploy.verdict import Budget
from attndeploy.verdict.budget import reduced_budget


def manifest() -> Manifest:
    return Manifest("m", "x", ["y"], [BundleGraph("m.onnx", "fp32", "ab"), BundleGraph("m.fp16.onnx", "fp16", "cd")],
                    {"fp32": Budget.float64(), "fp16": reduced_budget("fp16"), "int8": reduced_budget("int8", 0.98)},
                    "truth.npz", [(1, 3, 8, 8), (2, 3, 16, 16)], "float64",
                    {"min": (1, 3, 8, 8), "opt": (1, 3, 8, 8), "max": (2, 3, 16, 16)}, "any H, W", "modules.npz",
                    (1, 3, 8, 8), {"build_script": "build_engine.sh"}, ["bundle: a note"], "0.1.0")


def test_a_manifest_round_trips(tmp_path):
    written = manifest()
    written.save(tmp_path)
    folder, read = load_manifest(tmp_path)
    assert folder == tmp_path and read == written and read.final.file == "m.fp16.onnx"
    assert read.budget("int8").min_cosine == 0.98 and read.budget("fp32").kind == "float64"
    assert load_manifest(tmp_path / "bundle.json")[1] == written


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.update(format="attndeploy-bundle/0"), "must be an attndeploy bundle manifest"),
    (lambda d: d.pop("budgets"), "must hold every field"),
    (lambda d: d["graphs"][0].update(precision="fp8"), "graph precision must be known"),
    (lambda d: d["truth"].update(file="/etc/passwd"), "truth file must be a path inside the bundle"),
    (lambda d: d["truth"].update(shapes=[[1, 0, 8]]), "truth shape must be a shape"),
    (lambda d: d["budgets"]["fp16"].update(min_cosine=-1), "fp16 budget must hold non-negative numbers"),
    (lambda d: d.update(final="other.onnx"), "final graph must be its last graph"),
    (lambda d: d.update(graphs=[]), "must list a graph"),
])
def test_a_bad_manifest_is_refused_naming_the_field(change, message):
    data = json.loads(json.dumps(manifest().to_dict()))
    change(data)
    with pytest.raises(UsageError, match=message):
        manifest_from_dict(data)


def test_a_budget_the_bundle_lacks_is_refused():
    with pytest.raises(UsageError, match="must hold a budget for the graph's precision"):
        manifest().budget("fp8")


def references() -> ModuleReferences:
    x = np.arange(12, dtype=np.float32).reshape(1, 3, 2, 2)
    a, b = x * 2, x + 1
    events = [Event(0, "in", "conv", "", [x]), Event(1, "out", "conv", "conv", [a]), Event(2, "in", "act", "", [a]),
              Event(3, "out", "act", "act", [b]), Event(4, "out", "bn", "bn", [])]
    twins = [Event(e.index, e.kind, e.path, e.owner, [t.astype(np.float64) for t in e.tensors]) for e in events]
    modules = {"": ModuleInfo("Net", "net.py", 3, 9), "conv": ModuleInfo("Conv2d", "conv.py", 388, 548)}
    return ModuleReferences(x, events, twins, modules, [("", "conv"), ("", "act")])


def test_module_references_round_trip_with_each_tensor_stored_once(tmp_path):
    refs = references()
    refs.save(tmp_path / "modules.npz")
    with np.load(tmp_path / "modules.npz", allow_pickle=False) as data:
        stored = [k for k in data.files if k.startswith("t")]
    assert len(stored) == 6  # x, 2x, x+1 in float32 and in float64: the "in" of act is the "out" of conv
    read = ModuleReferences.load(tmp_path / "modules.npz")
    assert [(e.index, e.kind, e.path, e.owner) for e in read.events] == [(e.index, e.kind, e.path, e.owner)
                                                                         for e in refs.events]
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for e, f in zip(read.events + read.twins,
                                                                          refs.events + refs.twins)
               for a, b in zip(e.tensors, f.tensors))
    assert read.twins[1].tensors[0].dtype == np.float64 and read.calls == refs.calls and read.shape == (1, 3, 2, 2)
    loc = read.describe("conv", "output")
    assert (loc.path, loc.cls, loc.file, loc.line, loc.forward_line) == ("conv", "Conv2d", "conv.py", 388, 548)
    assert read.describe("act", "output").cls == "Net"  # a module without a record: the root's class


def test_unreadable_module_references_are_refused(tmp_path):
    (tmp_path / "modules.npz").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(UsageError, match="the module references must be readable"):
        ModuleReferences.load(tmp_path / "modules.npz")
    np.savez(tmp_path / "other.npz", meta=np.frombuffer(b'{"format": "x"}', np.uint8))
    with pytest.raises(UsageError, match="must be attndeploy's"):
        ModuleReferences.load(tmp_path / "other.npz")

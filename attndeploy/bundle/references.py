"""Module-level references for one input: every module's entry and exit in eager fp32 and float64, for the device.

    refs = ModuleReferences.load(folder / "modules.npz")     # numpy only, no pickle
    refs.events, refs.twins        # `attndeploy.events.Event`s in execution order (fp32, float64)
    refs.describe("model.9", "output")   # a Localisation naming the module: class, file:line

`attndeploy verify` runs the graph (or engine) on `x` with the module-boundary tensors exposed
and hands these to `attndeploy.localise.divergence.locate_in_graph`: the first module whose
graph tensors break the verdict's rule is named by path, class and ONNX nodes, as the export
names it. Every event is kept (paths and kinds: what folding and blame walk over); tensors
only where the bundled graphs carry the module's boundary or the module emitted no node
(a folded neighbour). Identical tensors (one module's output is the next one's input) are
stored once. `twins` is empty where the model could not run in float64 (`reference` then
names the stand-in).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from attndeploy.errors import UsageError, require
from attndeploy.events import Event
from attndeploy.fileio import write_bytes_atomic
from attndeploy.localise.report import Localisation

REFERENCES_FILE = "modules.npz"
FORMAT = "attndeploy-modules/1"


@dataclass(frozen=True)
class ModuleInfo:
    """A module's class and where its code is (file name, line of `class`, line of `def forward`)."""

    cls: str
    file: str = ""
    line: int = 0
    forward_line: int = 0


@dataclass
class ModuleReferences:
    """See the module docstring. `x`: the input (N, C, H, W) float32; `calls`: (caller, callee) module paths."""

    x: np.ndarray
    events: list[Event]
    twins: list[Event]
    modules: dict[str, ModuleInfo]
    calls: list[tuple[str, str]] = field(default_factory=list)
    reference: str = "float64"

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in _unique(self)[0].values()) + self.x.nbytes

    def describe(self, path: str, kind: str) -> Localisation:
        """The `Localisation` naming module `path` (the root when unknown), before the divergence is filled in."""
        info = self.modules.get(path) or self.modules.get("") or ModuleInfo("?")
        return Localisation(path, info.cls, info.file, info.line, info.forward_line, kind, self.shape)

    def save(self, path: Path) -> Path:
        """One uncompressed `.npz` (arrays, and a JSON header under `meta`), written atomically."""
        arrays, ids = _unique(self)
        events = [{"index": e.index, "kind": e.kind, "path": e.path, "owner": e.owner, "tensors": ids[("e", i)]}
                  for i, e in enumerate(self.events)]
        twins = [ids[("t", i)] for i in range(len(self.twins))]
        header = {"format": FORMAT, "reference": self.reference, "events": events, "twins": twins,
                  "modules": {p: vars(m) for p, m in self.modules.items()}, "calls": [list(c) for c in self.calls]}
        buffer = io.BytesIO()
        named: dict[str, Any] = {"x": self.x, "meta": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
                                 **arrays}
        np.savez(buffer, **named)
        return write_bytes_atomic(Path(path), buffer.getvalue())

    @classmethod
    def load(cls, path: Path) -> ModuleReferences:
        """Read a file `save` wrote (`UsageError` naming what is wrong with any other)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(bytes(data["meta"]).decode())
                require(header.get("format") == FORMAT, "a module references file must be attndeploy's", FORMAT,
                        repr(header.get("format")))
                tensors = {k: data[k] for k in data.files if k.startswith("t")}
                x = data["x"]
            events = [Event(int(e["index"]), str(e["kind"]), str(e["path"]), str(e["owner"]),
                            [tensors[k] for k in e["tensors"]]) for e in header["events"]]
            twins = [Event(e.index, e.kind, e.path, e.owner, [tensors[k] for k in keys])
                     for e, keys in zip(events, header["twins"])]
            modules = {str(p): ModuleInfo(str(m["cls"]), str(m["file"]), int(m["line"]), int(m["forward_line"]))
                       for p, m in header["modules"].items()}
            calls = [(str(a), str(b)) for a, b in header["calls"]]
        except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile) as err:
            if isinstance(err, UsageError):
                raise
            raise UsageError("the module references must be readable", f"an attndeploy {FORMAT} .npz",
                             f"{path}: {type(err).__name__}: {err}") from err
        return cls(x, events, twins, modules, calls, str(header.get("reference", "float64")))


def _unique(refs: ModuleReferences) -> tuple[dict[str, np.ndarray], dict[tuple[str, int], list[str]]]:
    """(arrays by key, the keys of each event's tensors): identical tensors (dtype, shape, bytes) stored once."""
    arrays: dict[str, np.ndarray] = {}
    seen: dict[tuple[str, tuple[int, ...], bytes], str] = {}
    ids: dict[tuple[str, int], list[str]] = {}

    def key_of(array: np.ndarray) -> str:
        array = np.ascontiguousarray(array)
        digest = (array.dtype.str, tuple(array.shape), hashlib.sha1(array.tobytes()).digest())
        if digest not in seen:
            seen[digest] = f"t{len(seen)}"
            arrays[seen[digest]] = array
        return seen[digest]

    for side, events in (("e", refs.events), ("t", refs.twins)):
        for i, event in enumerate(events):
            ids[(side, i)] = [key_of(t) for t in event.tensors]
    return arrays, ids


def module_info(cls: type, file: str, line: int, forward_line: int) -> ModuleInfo:
    """A `ModuleInfo` for class `cls` defined in `file` (kept as its base name: paths differ on the device)."""
    return ModuleInfo(cls.__name__, Path(file).name if file else "", line, forward_line)


def describe_references(refs: ModuleReferences) -> dict[str, Any]:
    """For the report: the input's shape, events stored with tensors, and bytes."""
    kept = sum(1 for e in refs.events if e.tensors)
    return {"shape": list(refs.shape), "events": len(refs.events), "events_with_tensors": kept,
            "reference": refs.reference, "bytes": refs.nbytes}


__all__ = ["FORMAT", "REFERENCES_FILE", "ModuleInfo", "ModuleReferences", "describe_references", "module_info"]

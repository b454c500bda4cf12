"""`bundle.json`: what a device bundle holds and how its graphs are judged; `attndeploy verify` reads it first.

    {"format": "attndeploy-bundle/1", "name": "cbam", "input_name": "input", "output_names": ["output"],
     "graphs": [{"file": "cbam.onnx", "precision": "fp32", "sha256": "..."}], "final": "cbam.onnx",
     "budgets": {"fp32": {...}, "fp16": {...}, "int8": {...}},        # `attndeploy.verdict.Budget.to_dict()`
     "truth": {"file": "truth.npz", "shapes": [[1, 64, 56, 56], ...], "reference": "float64"},
     "modules": {"file": "modules.npz", "shape": [1, 64, 14, 14]},   # or null
     "profile": {"min": [...], "opt": [...], "max": [...]}, "shape_rule": "...",
     "files": {"build_script": "build_engine.sh", "triton": "triton/cbam", ...}, "notes": [...]}

Paths are relative to the bundle folder (POSIX separators). A graph is judged by the budget of
its precision: the fp32 rule on float64 (or the export's own atol/rtol), fp16's and INT8's
cosine floors: the budgets the export judged it by. Reading is torch-free and strict: anything
that is not a manifest this version wrote is a `UsageError` naming the field.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from attndeploy.errors import UsageError, require
from attndeploy.fileio import write_json_atomic
from attndeploy.verdict import Budget

MANIFEST_FILE = "bundle.json"
FORMAT = "attndeploy-bundle/1"
PRECISIONS = ("fp32", "fp16", "int8")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class BundleGraph:
    """One ONNX graph of the bundle: its file (relative), the precision it carries and its sha256 when written."""

    file: str
    precision: str
    sha256: str


@dataclass
class Manifest:
    """See the module docstring. `graphs` in export order: the fp32 graph first, the final graph last."""

    name: str
    input_name: str
    output_names: list[str]
    graphs: list[BundleGraph]
    budgets: dict[str, Budget]
    truth_file: str
    truth_shapes: list[tuple[int, ...]]
    reference: str
    profile: dict[str, tuple[int, ...]]
    shape_rule: str = ""
    modules_file: str | None = None
    modules_shape: tuple[int, ...] | None = None
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    version: str = ""
    row_outputs: list[str] = field(default_factory=list)   # detection rows: the family's check decides, not the rule

    @property
    def final(self) -> BundleGraph:
        return self.graphs[-1]

    def graph_named(self, file: str) -> BundleGraph | None:
        return next((g for g in self.graphs if g.file == file), None)

    def budget(self, precision: str) -> Budget:
        require(precision in self.budgets, "the bundle must hold a budget for the graph's precision",
                "one of " + ", ".join(self.budgets), precision)
        return self.budgets[precision]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "name": self.name, "attndeploy_version": self.version, "input_name": self.input_name,
            "output_names": self.output_names, "graphs": [vars(g) for g in self.graphs], "final": self.final.file,
            "budgets": {k: b.to_dict() for k, b in self.budgets.items()},
            "truth": {"file": self.truth_file, "shapes": [list(s) for s in self.truth_shapes],
                      "reference": self.reference},
            "modules": ({"file": self.modules_file, "shape": list(self.modules_shape or ())}
                        if self.modules_file else None),
            "profile": {k: list(v) for k, v in self.profile.items()}, "shape_rule": self.shape_rule,
            "files": self.files, "notes": self.notes, "row_outputs": self.row_outputs,
        }

    def save(self, folder: Path) -> Path:
        return write_json_atomic(Path(folder) / MANIFEST_FILE, self.to_dict())


def _relative(value: Any, key: str) -> str:
    """A path inside the bundle folder, as the manifest spells it."""
    require(isinstance(value, str) and value != "" and not PurePosixPath(value).is_absolute()
            and ".." not in PurePosixPath(value).parts, f"bundle.json's {key} must be a path inside the bundle",
            "a relative path without '..'", repr(value))
    return str(value)


def _shape(value: Any, key: str) -> tuple[int, ...]:
    require(isinstance(value, list) and all(isinstance(d, int) and d > 0 for d in value) and len(value) > 0,
            f"bundle.json's {key} must be a shape", "a list of positive integers", repr(value))
    return tuple(value)


def _graph(entry: Any) -> BundleGraph:
    require(isinstance(entry, dict), "bundle.json's graphs must be objects", '{"file", "precision", "sha256"}',
            repr(entry))
    precision = entry.get("precision")
    require(precision in PRECISIONS, "bundle.json's graph precision must be known", "one of " + ", ".join(PRECISIONS),
            repr(precision))
    return BundleGraph(_relative(entry.get("file"), "graph file"), str(precision), str(entry.get("sha256", "")))


def _budget(entry: Any, precision: str) -> Budget:
    require(isinstance(entry, dict) and entry.get("kind") in ("float64", "given", "cosine"),
            f"bundle.json's {precision} budget must be a verdict budget", 'an object with kind "float64", "given" or '
            '"cosine"', repr(entry)[:200])
    budget = Budget.from_dict(entry)
    numbers = (budget.factor, budget.atol, budget.rtol, budget.min_cosine, budget.min_reduced_fraction)
    require(all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in numbers),
            f"bundle.json's {precision} budget must hold non-negative numbers", "factor, atol, rtol, min_cosine >= 0",
            repr(entry)[:200])
    return budget


def manifest_from_dict(data: Any) -> Manifest:
    """The manifest in `data` (parsed JSON); `UsageError` naming the first field that is missing or wrong."""
    require(isinstance(data, dict), "bundle.json must hold a JSON object", "an object", type(data).__name__)
    require(data.get("format") == FORMAT, "bundle.json must be an attndeploy bundle manifest", FORMAT,
            repr(data.get("format")))
    try:
        graphs = [_graph(g) for g in data["graphs"]]
        require(len(graphs) > 0, "bundle.json must list a graph", "one or more graphs", "none")
        budgets = {str(k): _budget(v, str(k)) for k, v in data["budgets"].items()}
        truth, modules = data["truth"], data.get("modules")
        outputs = data["output_names"]
        require(isinstance(outputs, list) and bool(outputs) and all(isinstance(n, str) for n in outputs),
                "bundle.json's output_names must name the outputs", "a list of names", repr(outputs))
        manifest = Manifest(
            name=str(data["name"]), input_name=str(data["input_name"]), output_names=list(outputs), graphs=graphs,
            budgets=budgets, truth_file=_relative(truth["file"], "truth file"),
            truth_shapes=[_shape(s, "truth shape") for s in truth["shapes"]], reference=str(truth["reference"]),
            profile={str(k): _shape(v, f"profile {k}") for k, v in data["profile"].items()},
            shape_rule=str(data.get("shape_rule") or ""),
            modules_file=_relative(modules["file"], "modules file") if modules else None,
            modules_shape=_shape(modules["shape"], "modules shape") if modules else None,
            files={str(k): _relative(v, k) for k, v in (data.get("files") or {}).items()},
            notes=[str(n) for n in data.get("notes") or []], version=str(data.get("attndeploy_version", "")),
            row_outputs=[str(n) for n in data.get("row_outputs") or [] if n in outputs])
    except (KeyError, TypeError, AttributeError) as err:
        raise UsageError("bundle.json must hold every field of an attndeploy bundle manifest",
                         "name, input_name, output_names, graphs, budgets, truth, profile",
                         f"{type(err).__name__}: {err}") from err
    require(data.get("final", manifest.final.file) == manifest.final.file, "bundle.json's final graph must be its "
            "last graph", manifest.final.file, repr(data.get("final")))
    return manifest


def load_manifest(bundle: Path) -> tuple[Path, Manifest]:
    """(the bundle folder, its manifest) for a bundle folder or its `bundle.json`; `UsageError` for anything else."""
    bundle = Path(bundle)
    path = bundle / MANIFEST_FILE if bundle.is_dir() else bundle
    require(path.is_file(), "BUNDLE must be a bundle folder (attndeploy export writes one beside the graph) or its "
            f"{MANIFEST_FILE}", f"a folder holding {MANIFEST_FILE}", str(bundle))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(f"{MANIFEST_FILE} must be readable JSON", "the manifest attndeploy export wrote",
                         f"{path}: {type(err).__name__}: {err}") from err
    return path.parent, manifest_from_dict(data)


__all__ = ["FORMAT", "MANIFEST_FILE", "BundleGraph", "Manifest", "load_manifest", "manifest_from_dict", "sha256_of"]

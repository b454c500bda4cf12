"""What `attndeploy verify` checks: which graph (or engine), on which backend, under which budget.

- nothing given: the bundle's final graph (`<name>.fp16.onnx` / `.int8.onnx` when exported at
  that precision, else `<name>.onnx`) in onnxruntime on the CPU;
- `--onnx FILE`: that graph (one of the bundle's, or another: its precision read from the graph);
- `--engine FILE`: that engine in TensorRT; its graph is the bundled one of the same name
  (`build_engine.sh` builds `<stem>.engine` from `<stem>.onnx`; `attndeploy export --engine`
  writes `<stem>.<precision>.engine`), else the final graph;
- `--backend tensorrt` without `--engine`: the chosen graph's `<stem>.engine` beside it.

The budget is the bundle's for the graph's precision: what the export judged that graph by.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from attndeploy.bundle.graph_io import read_graph
from attndeploy.bundle.manifest import BundleGraph, Manifest, sha256_of
from attndeploy.defaults import ORT_PROVIDERS, TENSORRT_BACKEND
from attndeploy.errors import require, unknown_name
from attndeploy.precision.plan import graph_precision
from attndeploy.verdict import Budget

BACKENDS = ("onnxruntime", *ORT_PROVIDERS, TENSORRT_BACKEND)
ALIASES = {"onnxruntime": "onnxruntime-cpu"}


@dataclass
class Target:
    """The graph to judge (`graph`: its file; the engine's source for TensorRT), at `precision` by `budget`."""

    graph: Path
    precision: str
    budget: Budget
    backend: str
    engine: Path | None = None
    notes: list[str] = field(default_factory=list)
    row_outputs: tuple[str, ...] = ()      # detection rows: not held to the element-wise rule (see `rows_unjudged`)

    @property
    def key(self) -> tuple[str, str]:
        return (self.precision, self.backend)


def _backend(name: str | None, engine: Path | None) -> str:
    if name is None:
        return TENSORRT_BACKEND if engine is not None else "onnxruntime-cpu"
    if name not in BACKENDS:
        raise unknown_name("backend", name, BACKENDS)
    return ALIASES.get(name, name)


def _bundled(folder: Path, manifest: Manifest, path: Path) -> BundleGraph | None:
    resolved = path.resolve()
    return next((g for g in manifest.graphs if (folder / g.file).resolve() == resolved), None)


def _engine_graph(folder: Path, manifest: Manifest, engine: Path, notes: list[str]) -> Path:
    stem = engine.name.removesuffix(".engine")
    for candidate in (stem, stem.removesuffix(".fp32")):
        graph = manifest.graph_named(f"{candidate}.onnx")
        if graph is not None:
            return folder / graph.file
    notes.append(f"{engine.name} matches no bundled graph by name: its graph is taken to be the final one, "
                 f"{manifest.final.file}")
    return folder / manifest.final.file


def resolve_target(folder: Path, manifest: Manifest, onnx: Path | None = None, engine: Path | None = None,
                   backend: str | None = None) -> Target:
    """The `Target` for verify's arguments (see the module docstring); `UsageError` for a combination that cannot
    run (an engine in onnxruntime, a graph that is not ONNX, a TensorRT backend without an engine)."""
    require(onnx is None or engine is None, "verify takes --engine or --onnx, not both", "one of them",
            f"--engine {engine} and --onnx {onnx}")
    chosen = _backend(backend, engine)
    notes: list[str] = []
    if engine is not None:
        require(chosen == TENSORRT_BACKEND, "--engine runs in TensorRT", "--backend tensorrt (or none)",
                f"--backend {backend}")
        require(engine.suffix == ".engine" and engine.is_file(), "--engine must be a TensorRT engine file",
                "an existing FILE.engine (bash build_engine.sh builds them)", str(engine))
        graph = _engine_graph(folder, manifest, engine, notes)
    else:
        graph = onnx if onnx is not None else folder / manifest.final.file
    require(graph.suffix == ".onnx" and graph.is_file(), "the graph to verify must be an ONNX file",
            "an existing FILE.onnx" + ("" if onnx is not None else f" (the bundle's {manifest.final.file})"), str(graph))
    if chosen == TENSORRT_BACKEND and engine is None:
        engine = graph.with_suffix(".engine")
        require(engine.is_file(), "--backend tensorrt runs the graph's engine", f"{engine.name} beside the graph "
                f"(bash {manifest.files.get('build_script', 'build_engine.sh')} builds it) or --engine FILE",
                f"no {engine}")
    bundled = _bundled(folder, manifest, graph)
    if bundled is None:
        precision = graph_precision(read_graph(graph))
        notes.append(f"{graph.name} is not one of the bundle's graphs: judged as {precision} (read from the graph)")
    else:
        precision = bundled.precision
        if bundled.sha256 and sha256_of(graph) != bundled.sha256:
            notes.append(f"{graph.name} is not the file the export wrote (its sha256 differs)")
    return Target(graph, precision, manifest.budget(precision), chosen, engine, notes, tuple(manifest.row_outputs))


__all__ = ["ALIASES", "BACKENDS", "Target", "resolve_target"]

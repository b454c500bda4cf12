"""On the device, without torch: the first PyTorch module whose output the graph (or engine) gets wrong.

The bundle's module references (`references.ModuleReferences`: every module's entry and exit
at one input, eager fp32 and float64, with module paths, classes and the calls between them)
are matched against the graph's tensors as the export's localisation matches them:
`index_graph` maps the graph's nodes to those module paths, the boundary tensors are exposed
(onnxruntime: `run_exposed`; TensorRT: the engine rebuilt with them marked as outputs,
`attndeploy.tensorrt.exposed`), and `locate_in_graph` names the first module past the
verdict's rule, with its ONNX nodes.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import onnx

from attndeploy.bundle.manifest import Manifest
from attndeploy.bundle.references import ModuleReferences
from attndeploy.bundle.target import Target
from attndeploy.defaults import ONNX_TOL, TENSORRT_BACKEND
from attndeploy.errors import first_line
from attndeploy.localise.divergence import exposed_names, locate_in_graph
from attndeploy.localise.graph import GraphIndex, GraphRun, index_graph, run_exposed
from attndeploy.localise.report import Localisation
from attndeploy.shapes import format_shape
from attndeploy.verdict import Budget


def _values(target: Target, index: GraphIndex, names: list[str], refs: ModuleReferences, input_name: str,
            notes: list[str]) -> GraphRun | None:
    """The exposed tensors' values on the target's backend (TensorRT falls back to onnxruntime, said so); None when
    neither can run them here."""
    if target.backend == TENSORRT_BACKEND:
        from attndeploy.tensorrt.exposed import exposed_engine_values

        try:
            values = exposed_engine_values(target.graph, names, input_name, refs.x.copy())
            notes.append(f"module tensors from {target.graph.name} rebuilt in TensorRT with them marked as outputs "
                         "(no fusion across them)")
            return values
        except Exception as err:  # a diagnostic after the verdict: any TensorRT or Polygraphy error ends it here
            notes.append(f"TensorRT could not expose the module tensors ({first_line(err, 200, with_type=True)})")
        if importlib.util.find_spec("onnxruntime") is None:
            notes.append("no onnxruntime here to compare them instead (pip install 'attndeploy[ort]')")
            return None
        notes.append("module tensors compared in onnxruntime on the CPU instead")
    elif target.backend != "onnxruntime-cpu":
        notes.append(f"module tensors compared in onnxruntime on the CPU (the verdict ran on {target.backend})")
    return run_exposed(index, names, input_name, refs.x.copy())


def localise_on_device(folder: Path, manifest: Manifest, target: Target, budget: Budget
                       ) -> tuple[Localisation | None, list[str]]:
    """(the first diverging module or None, notes on how it was found). The graph is `target.graph`; the input is the
    module references' (the bundle's smallest)."""
    if manifest.modules_file is None:
        return None, ["the bundle holds no module references (see its notes): no module is named"]
    refs = ModuleReferences.load(folder / manifest.modules_file)
    try:
        graph = onnx.load(str(target.graph))
    except Exception as err:  # protobuf's DecodeError and friends (the verdict already ran this graph)
        return None, [f"the graph could not be read for localisation: {first_line(err, with_type=True)}"]
    index = index_graph(graph, refs.modules, refs.calls)
    names = exposed_names(refs.events, index)
    notes: list[str] = []
    values = _values(target, index, names, refs, manifest.input_name, notes)
    if values is None:
        return None, notes
    if budget.kind == "float64" and not refs.twins:  # no float64 module outputs to anchor on
        budget = Budget.given(ONNX_TOL.atol, ONNX_TOL.rtol)
        notes.append(f"modules judged against eager fp32 (atol {ONNX_TOL.atol:g}, rtol {ONNX_TOL.rtol:g}): the "
                     f"reference is {refs.reference}")
    found = locate_in_graph(refs.events, refs.twins, index, values, budget, refs.describe, refs.shape,
                            manifest.input_name)
    if found is None:
        mapped = sum(1 for e in refs.events if index.has_nodes(e.path))
        notes.append(f"no module diverges at {format_shape(refs.shape)} ({mapped} of {len(refs.events)} module "
                     "events map to the graph's nodes)")
    return found, notes


__all__ = ["localise_on_device"]

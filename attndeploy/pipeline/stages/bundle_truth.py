"""What of the truth goes to the device: probes at the engine's shapes and module references, each bounded in size.

- `engine_shapes`: the engine profile's (min, opt, max), as the engine stage derives it (the
  settings' `--min/--opt/--max`, else the family's, else from the example and the shape rule);
- `bundle_probes`: the truth at the example, the opt, the min and the max (each inside the shape
  rule, from `Truth.probe`: nothing here runs the model). A probe is left out, with a note,
  when its estimated size (input, eager fp32 and float64 outputs, scaled from the example's)
  passes `PROBE_LIMIT`, or its input more than `GROWTH` times the elements of the largest
  parity probe: the eager float64 run grows with it (quadratically in H·W for non-local
  attention: 3 GB at 1x64x112x112), and the export has not shown the model takes that size;
- `module_references`: every module's entry and exit at the smallest of those probes (fp32 and
  float64, `Truth.module_runs`), tensors kept where a bundled graph carries the module's
  boundary; left out with a note past `MODULES_LIMIT`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import onnx

from attndeploy.bundle.references import ModuleInfo, ModuleReferences, module_info
from attndeploy.errors import UsageError
from attndeploy.events import Event
from attndeploy.localise.graph import index_graph
from attndeploy.localise.match import event_names
from attndeploy.module_events import EagerRun
from attndeploy.modulepath import class_site, forward_site
from attndeploy.pipeline.model import PreparedModel
from attndeploy.pipeline.run import Run
from attndeploy.shapes import Shape, format_shape
from attndeploy.tensorrt.profiles import derive_profile
from attndeploy.truth.eager import EagerFailed
from attndeploy.truth.truth import Truth
from attndeploy.verdict import TruthProbe

MIB = 1 << 20
PROBE_LIMIT = 32 * MIB      # one probe: its input, eager fp32 and float64 outputs
GROWTH = 2                  # a probe's input elements, at most this times the largest parity probe's
MODULES_LIMIT = 16 * MIB    # the module references (tensors stored once each)


def engine_shapes(run: Run, model: PreparedModel, truth: Truth, graph: onnx.ModelProto) -> tuple[Shape, Shape, Shape]:
    """(min, opt, max) of the engine profile for `graph`'s input, inside the shape rule."""
    engine = run.settings.engine
    family = model.family.engine_shapes or (None, None, None)
    lo, best, hi = family
    if engine is not None:
        lo, best, hi = engine.min or lo, engine.opt or best, engine.max or hi
    rule = truth.rule
    hw = (rule.multiple, rule.min_hw) if rule is not None else (1, 1)
    try:
        profile = derive_profile(graph, model.shape, min=lo, opt=best, max=hi, hw_multiple=hw[0], min_hw=hw[1])
    except UsageError:
        if engine is not None and (engine.min or engine.opt or engine.max):
            raise
        run.detail(f"bundle: the family's engine shapes do not fit the graph ({', '.join(map(str, family))}): the bundle's "
                 "profile is derived from the example and the shape rule")
        profile = derive_profile(graph, model.shape, hw_multiple=hw[0], min_hw=hw[1])
    found = profile[model.input_name]
    return tuple(found.min), tuple(found.opt), tuple(found.max)


def _too_large(truth: Truth, shape: Shape) -> str:
    """Why the truth at `shape` is left out of the bundle ("" when it is not)."""
    example = truth.example  # its bytes, scaled by the input's elements
    estimate = int(example.nbytes * math.prod(shape) / max(math.prod(example.shape), 1))
    if estimate > PROBE_LIMIT:
        return f"{estimate / MIB:.1f} MiB estimated, over the {PROBE_LIMIT // MIB} MiB per probe"
    largest = max(math.prod(p.shape) for p in truth.probes)
    if math.prod(shape) > GROWTH * largest:
        return (f"{math.prod(shape) / largest:.1f}x the elements of the largest parity probe, over {GROWTH}x: its "
                "eager float64 run grows with them")
    return ""


def bundle_probes(run: Run, truth: Truth, shapes: tuple[Shape, Shape, Shape]) -> list[TruthProbe]:
    """The truth at the example and the profile's opt, min and max (see the module docstring)."""
    lo, best, hi = shapes
    chosen: dict[Shape, TruthProbe] = {truth.example.shape: truth.example}
    for role, shape in (("opt", best), ("min", lo), ("max", hi)):
        if shape in chosen:
            continue
        why = _too_large(truth, shape)
        if not why and truth.rule is not None and not truth.rule.accepts(shape):
            why = f"outside the shape rule ({truth.rule.describe()})"
        if why:
            run.detail(f"bundle: the {role} probe {format_shape(shape)} left out of the truth ({why})")
            continue
        try:
            chosen[shape] = truth.probe(shape)
        except EagerFailed as err:
            run.detail(f"bundle: the {role} probe left out: {err}")
    return list(chosen.values())


def _infos(run: EagerRun) -> dict[str, ModuleInfo]:
    """Every module's class and source site (looked up once per class: `inspect` parses the whole file)."""
    by_class: dict[type, ModuleInfo] = {}
    for module in run.modules.values():
        cls = type(module)
        if cls not in by_class:
            file, line = class_site(cls)
            by_class[cls] = module_info(cls, file, line, forward_site(cls)[1])
    return {path: by_class[type(module)] for path, module in run.modules.items()}


def _kept(run: EagerRun, graphs: Sequence[onnx.ModelProto]) -> set[int]:
    """Events whose tensors the device needs: a bundled graph carries their module's boundary, or the module emitted
    no node in some graph (a neighbour folded it in: compared in its stead)."""
    kept: set[int] = set()
    for graph in graphs:
        index = index_graph(graph, run.modules, run.calls)
        kept |= {e.index for e in run.events if event_names(e, index) or not index.has_nodes(e.path)}
    return kept


def _stripped(events: list[Event], kept: set[int]) -> list[Event]:
    return [Event(e.index, e.kind, e.path, e.owner, list(e.tensors) if e.index in kept else []) for e in events]


def module_references(run: Run, truth: Truth, probe: TruthProbe, graphs: Sequence[onnx.ModelProto]
                      ) -> ModuleReferences | None:
    """The module references at `probe` for `graphs`; None (with a note) past `MODULES_LIMIT`."""
    fp32, double = truth.module_runs(probe)
    kept = _kept(fp32, graphs)
    twins = _stripped(double.events, kept) if double is not None else []
    refs = ModuleReferences(probe.x, _stripped(fp32.events, kept), twins,
                            _infos(fp32), sorted(fp32.calls), truth.reference)
    size = refs.nbytes
    if size > MODULES_LIMIT:
        run.detail(f"bundle: module references at {probe.label} left out ({size / MIB:.1f} MiB, over "
                 f"{MODULES_LIMIT // MIB} MiB): verify on the device names the failing output, not the module")
        return None
    return refs


__all__ = ["GROWTH", "MODULES_LIMIT", "PROBE_LIMIT", "bundle_probes", "engine_shapes", "module_references"]

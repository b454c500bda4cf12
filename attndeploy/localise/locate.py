"""`localise_divergence`: the first PyTorch module whose output the ONNX graph gets wrong.

1. eager: every module's float inputs and outputs in execution order, in fp32 and in float64
   (`Truth.module_runs`: the truth runs the model, nothing here does);
2. graph: `index_graph` — every node's module path, each module's boundary tensors;
   `run_exposed` — those tensors as extra outputs, one onnxruntime run (a node failing at
   this shape is cut off and the rest rerun);
3. `first_divergence` — the first event past the verdict's rule (the graph tensor's distance
   to float64 against eager fp32's), non-finite or of another shape. An
   "out" event blames its module (its children all matched), an "in" event the caller.
   When onnxruntime failed at a node and nothing diverged before that node's module
   finished, that module is blamed with the runtime error.

Steps 2 and 3 need no torch (`attndeploy.localise.divergence`, which `attndeploy verify` runs on
the device); this module adds the model's classes and source sites.
"""

from __future__ import annotations

import time

import numpy as np
import onnx
from torch import nn

from attndeploy.localise.divergence import exposed_names, locate_in_graph
from attndeploy.localise.graph import index_graph, run_exposed
from attndeploy.localise.report import Localisation
from attndeploy.module_events import EagerRun
from attndeploy.modulepath import class_site, forward_site
from attndeploy.verdict import Budget


def _describe(path: str, model: nn.Module, run: EagerRun, kind: str, x_shape: tuple[int, ...]) -> Localisation:
    cls = type(run.modules.get(path, model))
    file, line = class_site(cls)
    return Localisation(path, cls.__name__, file, line, forward_site(cls)[1], kind, x_shape)


def localise_divergence(model: nn.Module, runs: tuple[EagerRun, EagerRun | None], proto: onnx.ModelProto,
                        x: np.ndarray, input_name: str, budget: Budget) -> Localisation | None:
    """The first module of `model` whose output `proto` gets wrong on input `x`, or None.

    `runs`: every module's events on `x` in eager fp32 and in float64 (None where the model
    cannot run in float64: `budget` then judges against eager fp32 itself). `proto`: the
    graph exported from it (before onnxsim: its node names and scopes are the exporter's),
    with one input `input_name`. `x`: float32 (N, C, H, W) (any shape the model takes) at
    which the verdict failed. None when every module's output matches (or none could be
    mapped to the graph, or the graph cannot be run at all).
    """
    start = time.perf_counter()
    run, run64 = runs
    index = index_graph(proto, run.modules, run.calls)
    graph = run_exposed(index, exposed_names(run.events, index), input_name, np.asarray(x, np.float32))
    twins = run64.events if run64 is not None else []
    shape = tuple(x.shape)
    loc = locate_in_graph(run.events, twins, index, graph, budget,
                          lambda path, kind: _describe(path, model, run, kind, shape), shape, input_name)
    if loc is not None:
        loc.seconds = time.perf_counter() - start
    return loc


__all__ = ["localise_divergence"]

"""The automatic fp16 search: which nodes must stay fp32 for this model on these inputs, and why, by module path.

    found = search_fp16(fp32_model, inputs, refs, "input", policy={"/attn/Softmax": "*.softmax"})
    found.model                  # the mixed fp16 graph (float32 graph inputs and outputs)
    found.kept_by_module()       # {"attn": ["MatMul /attn/MatMul: writes values up to 8.6e+04 ...", ...]}

1. Start: the fp32 plan (`plan.fp32_plan`: Softmax, norms, reductions, attention energies,
   sampling grids; `static_plan=False` starts from nothing) and the user's keep-fp32 policy.
2. Overflow: the fp32 graph runs on the search inputs with every tensor exposed; a node
   that writes values past `FP16_MAX / OVERFLOW_MARGIN`, and every node that reads them,
   stays fp32 (so such a tensor never makes an fp16 round trip: an attention MatMul and
   its Softmax stay fp32 together).
3. Budget: the fp16 graph runs in plain onnxruntime and in strict-fp16 evaluation
   (`strict`); while an output is non-finite or its cosine is below the budget, the
   failing run's tensors (strict first) are compared node by node with the fp32 graph's, and the node
   that adds the most error (its output's 1 - cosine minus its inputs'; a first
   non-finite output counts as infinite) stays fp32 with its readers of non-finite
   values; at most `MAX_ROUNDS` rounds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx

from attndeploy.defaults import FP16_MAX, FP16_MIN_COSINE
from attndeploy.precision.fp16 import convert_onnx_to_fp16, name_nodes
from attndeploy.verdict.metrics import cosine_of, error_stats
from attndeploy.precision.plan import fp32_plan
from attndeploy.precision.policy import scope_label
from attndeploy.precision.strict import run_each, strict_fp16_model
from attndeploy.precision.tensors import float_values

OVERFLOW_MARGIN = 2.0    # inputs beyond the search's may be larger: values past 32752 already stay fp32
MAX_ROUNDS = 12
_TYPE_ONLY = frozenset({"Constant", "Shape", "Size", "Cast", "CastLike", "Identity"})
_LAYOUT = frozenset({"Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Slice", "Split", "Concat"})


@dataclass(frozen=True)
class Kept:
    """One node kept fp32: why (`reason`), by what (`by`: "plan", "policy", "overflow", "budget", joined by "+")."""

    node: str
    op_type: str
    module: str
    by: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"node": self.node, "op_type": self.op_type, "module": self.module, "by": self.by,
                "reason": self.reason}


@dataclass
class Fp16Search:
    """The mixed fp16 graph the search settled on, every node kept fp32 and why, and each round's verdict."""

    model: onnx.ModelProto
    kept: list[Kept] = field(default_factory=list)
    rounds: list[str] = field(default_factory=list)
    cosine: dict[str, float] = field(default_factory=dict)   # "plain" / "strict": lowest output cosine
    passed: bool = False

    def kept_by_module(self, by: Sequence[str] = ("policy", "overflow", "budget")) -> dict[str, list[str]]:
        """{module path: ['<op> <node>: <reason>', ...]} of the nodes kept for one of the reasons `by`."""
        grouped: dict[str, list[str]] = {}
        for k in self.kept:
            if set(k.by.split("+")) & set(by):
                grouped.setdefault(k.module, []).append(f"{k.op_type} {k.node}: {k.reason}")
        return grouped

    def to_dict(self) -> dict[str, object]:
        return {"kept": [k.to_dict() for k in self.kept], "kept_by_module": self.kept_by_module(),
                "rounds": self.rounds, "cosine": self.cosine, "passed": self.passed}


class _Search:
    def __init__(self, model: onnx.ModelProto, inputs: Sequence[np.ndarray], refs: Sequence[Sequence[np.ndarray]],
                 input_name: str, budget: float) -> None:
        self.m, self.inputs, self.refs, self.input_name, self.budget = model, inputs, refs, input_name, budget
        self.nodes = {n.name: n for n in model.graph.node}
        self.writers = {o: n for n in model.graph.node for o in n.output if o}
        self.readers: dict[str, list[onnx.NodeProto]] = {}
        for n in model.graph.node:
            for t in n.input:
                self.readers.setdefault(t, []).append(n)
        self.kept: dict[str, Kept] = {}
        self.values32 = float_values(model, {input_name: inputs[0]})

    def keep(self, node: onnx.NodeProto, by: str, reason: str) -> bool:
        """Keep `node` fp32 (True if it was not kept yet); evidence for a node already kept is added to it."""
        if node.op_type in _TYPE_ONLY:
            return False
        old = self.kept.get(node.name)
        if old is not None:
            if by not in old.by.split("+"):
                self.kept[node.name] = Kept(node.name, node.op_type, old.module, f"{old.by}+{by}",
                                            f"{old.reason}; {reason}")
            return False
        self.kept[node.name] = Kept(node.name, node.op_type, scope_label(node), by, reason)
        return True

    def keep_readers(self, tensor: str, by: str, reason: str) -> int:
        return sum(self.keep(r, by, reason) for r in self.readers.get(tensor, []))

    def overflow(self) -> int:
        """Keep the writers and readers of tensors past FP16_MAX / OVERFLOW_MARGIN on any search input."""
        limit = FP16_MAX / OVERFLOW_MARGIN
        peaks = {n: float(np.abs(v).max(initial=0.0)) for n, v in self.values32.items()}
        for x in self.inputs[1:]:
            for n, v in float_values(self.m, {self.input_name: x}, list(peaks)).items():
                peaks[n] = max(peaks[n], float(np.abs(v).max(initial=0.0)))
        peaks[self.input_name] = max(float(np.abs(x).max(initial=0.0)) for x in self.inputs)
        count = 0
        for tensor, peak in peaks.items():
            if peak <= limit:
                continue
            why = f"values up to {peak:.3g} past {limit:g} (fp16 max {FP16_MAX:g} / margin {OVERFLOW_MARGIN:g})"
            writer = self.writers.get(tensor)
            if writer is not None:
                count += self.keep(writer, "overflow", f"writes {why}")
            count += self.keep_readers(tensor, "overflow", f"reads {tensor}: {why}")
        return count

    def evaluate(self, fp16: onnx.ModelProto) -> tuple[float, float]:
        """The lowest output cosine over the search inputs (NaN: non-finite), plain and strict-fp16."""
        feeds = [{self.input_name: x} for x in self.inputs]

        def lowest(runs: list[list[np.ndarray]]) -> float:
            return cosine_of([error_stats(r, o).cosine for outs, refs in zip(runs, self.refs)
                              for r, o in zip(refs, outs)])
        return lowest(run_each(fp16, feeds)), lowest(run_each(strict_fp16_model(fp16), feeds, level="none"))

    def upstream(self, node: onnx.NodeProto) -> list[onnx.NodeProto]:
        """The nodes (not kept) whose outputs reach `node`'s inputs through layout ops, with those layout ops.

        The layout ops are kept with the computing nodes, so no fp32 -> fp16 -> fp32 round
        trip is left between them and `node`.
        """
        found: list[onnx.NodeProto] = []
        todo, seen = list(node.input), set()
        while todo:
            writer = self.writers.get(todo.pop())
            if writer is None or writer.name in seen:
                continue
            seen.add(writer.name)
            if writer.op_type in _LAYOUT or writer.op_type in _TYPE_ONLY:
                todo.extend(writer.input[:1])
                found.append(writer)
            elif writer.name not in self.kept:
                found.append(writer)
        return [n for n in found if n.name not in self.kept]

    def worst_node(self, fp16: onnx.ModelProto, mode: str) -> int:
        """Keep the node adding the most error in `mode` ("strict" or "plain") evaluation (module docstring).

        Where that node already computes in fp32 (a kept MatMul amplifying fp16-rounded
        inputs), the fp16 nodes feeding it are kept instead.
        """
        feeds = {self.input_name: self.inputs[0]}
        strict = (float_values(strict_fp16_model(fp16), feeds) if mode == "strict"
                  else float_values(fp16, feeds, level="all"))
        converted = {n.name: n for n in fp16.graph.node}
        err: dict[str, float] = {self.input_name: 0.0}
        best: tuple[float, onnx.NodeProto | None, str] = (0.0, None, "")
        for node in self.m.graph.node:
            twin = converted.get(node.name)
            if twin is None or node.op_type == "Constant":
                continue
            inherited = max((err.get(t, 0.0) for t in node.input), default=0.0)
            for ours, theirs in zip(node.output, twin.output):
                same = ours in self.values32 and theirs in strict and self.values32[ours].shape == strict[theirs].shape
                if not same:  # not run, or a data-dependent size (NMS keeps other boxes in fp16): nothing to compare
                    continue
                stats = error_stats(self.values32[ours], strict[theirs])
                err[ours] = math.inf if not stats.finite else max(0.0, 1.0 - stats.cosine)
                added = err[ours] - inherited if math.isfinite(inherited) else 0.0
                if added > best[0]:
                    what = f"turns finite inputs non-finite ({mode})" if not stats.finite else (
                        f"adds 1 - cosine {added:.2g} (output cosine {stats.cosine:.6f}, {mode})")
                    best = (added, node, what)
        _, node, what = best
        if node is None:
            return 0
        if node.name in self.kept or node.op_type in _TYPE_ONLY:
            feeders = self.upstream(node)
            return sum(self.keep(f, "budget", f"feeds {node.op_type} {node.name}, which {what}: fp16 rounding "
                                 "of its inputs is amplified") for f in feeders)
        self.keep(node, "budget", what)
        return 1 + (sum(self.keep_readers(o, "budget", f"reads {o}, non-finite in fp16") for o in node.output)
                    if "non-finite" in what else 0)


def search_fp16(fp32: onnx.ModelProto, inputs: Sequence[np.ndarray], refs: Sequence[Sequence[np.ndarray]],
                input_name: str, policy: Mapping[str, str] | None = None, static_plan: bool = True,
                budget: float = FP16_MIN_COSINE, max_rounds: int = MAX_ROUNDS) -> Fp16Search:
    """The mixed fp16 graph of `fp32` that meets `budget` on `inputs`, found as the module docstring says.

    `inputs`: model inputs (N, C, H, W) float32; `refs[i]`: the eager fp32 outputs on
    `inputs[i]`, in graph output order (the truth the budget is measured against).
    `policy`: {node name: the keep-fp32 pattern that chose it} (`policy.keep_nodes`).
    """
    model = onnx.ModelProto()
    model.CopyFrom(fp32)
    name_nodes(model)
    search = _Search(model, inputs, refs, input_name, budget)
    if static_plan:
        for pin in fp32_plan(model):
            if pin.node in search.nodes:
                search.keep(search.nodes[pin.node], "plan", pin.reason)
    for name, pattern in (policy or {}).items():
        if name in search.nodes:
            search.keep(search.nodes[name], "policy", f"keep-fp32 pattern {pattern!r}")
    rounds = [f"overflow: {search.overflow()} node(s) kept fp32"]
    result = Fp16Search(model)
    for round_ in range(max_rounds + 1):
        fp16 = convert_onnx_to_fp16(model, keep_nodes=list(search.kept), static_plan=False)
        plain, strict = search.evaluate(fp16)
        ok = all(math.isfinite(c) and c >= budget for c in (plain, strict))
        rounds.append(f"round {round_}: {len(search.kept)} node(s) fp32, lowest cosine plain {plain:.6f}, "
                      f"strict-fp16 {strict:.6f}: {'meets' if ok else 'misses'} {budget:g}")
        result = Fp16Search(fp16, list(search.kept.values()), rounds, {"plain": plain, "strict": strict}, ok)
        mode = "strict" if not (math.isfinite(strict) and strict >= budget) else "plain"
        if ok or round_ == max_rounds or not (search.worst_node(fp16, mode)
                                               or (mode == "plain" and search.worst_node(fp16, "strict"))):
            break
    return result


__all__ = ["MAX_ROUNDS", "OVERFLOW_MARGIN", "Fp16Search", "Kept", "search_fp16"]

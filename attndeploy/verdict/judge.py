"""`judge`: the only place a candidate passes or fails. A candidate is anything that maps an input to outputs.

    verdict = judge(truth.probes, run, ["output0"], Budget.float64(), ("fp32", "onnxruntime-cpu"))

`run(copy of x) -> outputs in order` is an onnxruntime session, a TensorRT engine, eager
at one thread (the determinism gate) or a planted bug: each is judged by its `budget`
against the same truth, probe by probe, output by output. A run that raises, returns
another number of outputs or another shape fails that probe with its error kept (a
graph with baked sizes often fails at run time at other shapes).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from attndeploy.verdict.budget import Budget
from attndeploy.verdict.metrics import error_stats
from attndeploy.verdict.report import OutputVerdict, Verdict
from attndeploy.verdict.rule import by_channel, channel_max, distances
from attndeploy.verdict.truth import TruthProbe

Key = tuple[str, str]              # (precision, backend)
Runner = Callable[[np.ndarray], Sequence[np.ndarray]]
# detection rows (eager fp32, the candidate's, float64) -> ("passed" | "failed" | "undecidable", one line)
RowCheck = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[str, str]]


def key_label(key: Key) -> str:
    """`("fp32", "onnxruntime-cpu")` -> "fp32/onnxruntime-cpu" (how report.json spells it)."""
    return "/".join(key)


def record_error(acc: OutputVerdict, tag: str, error: str) -> None:
    """The candidate raised (or returned the wrong outputs) at the probe `tag`: it fails there, its error kept."""
    acc.failing_elements += 1
    acc.failing_shapes.append(f"{tag} (backend raised: {error})")
    acc.max_abs_err, acc.worst_shape, acc.worst_index = math.inf, tag, []


def _fails(budget: Budget, acc: OutputVerdict, tag: str, reference: np.ndarray, eager: np.ndarray,
           got: np.ndarray, diff: np.ndarray, spread: np.ndarray | None) -> np.ndarray:
    """Elements past the budget (bool, shaped like `got`); folds the fp32 rule's distances into `acc`."""
    nonfinite = ~np.isfinite(got) & np.isfinite(eager)
    if not np.issubdtype(eager.dtype, np.floating):
        return diff != 0  # integer outputs (indices, counts) must be equal
    if budget.kind == "given":
        return nonfinite | ((diff > budget.atol) & (diff > budget.rtol * np.abs(eager)))
    if budget.kind == "cosine":
        return nonfinite
    dist = distances(reference, eager, got, budget.factor, spread)
    ratio = dist.ratio
    c = int(np.argmax(ratio)) if ratio.size else 0
    if ratio.size and ratio[c] >= acc.ratio:
        acc.ratio, acc.graph_distance, acc.eager_distance = float(ratio[c]), float(dist.graph[c]), float(dist.eager[c])
    limit = dist.limit
    low, high = float(limit.min(initial=np.inf)), float(limit.max(initial=0.0))
    acc.limit = [min(low, acc.limit[0]), max(high, acc.limit[1])] if acc.limit else [low, high]
    if dist.ill_conditioned():
        acc.ill_conditioned_shapes.append(tag)
    shaped = limit.reshape((1, -1) + (1,) * (got.ndim - 2)) if got.ndim >= 2 else float(limit[0])
    with np.errstate(invalid="ignore"):
        past = np.abs(got - reference) > shaped
    return nonfinite | past | (~np.isfinite(got) & np.isfinite(reference))  # NaN where eager is NaN: its own finding


def fold(acc: OutputVerdict, budget: Budget, tag: str, reference: np.ndarray, eager: np.ndarray,
         got: np.ndarray, spread: np.ndarray | None = None) -> None:
    """Fold one output at one probe into `acc` (a shape mismatch, a NaN or an Inf always fails; `spread`: see
    `attndeploy.verdict.rule.distances`)."""
    if got.shape != eager.shape:
        acc.failing_elements += max(eager.size, 1)
        acc.failing_shapes.append(f"{tag} (output shape {got.shape}, expected {eager.shape})")
        acc.max_abs_err, acc.worst_shape, acc.worst_index = math.inf, tag, []
        return
    eager64, got64 = eager.astype(np.float64), got.astype(np.float64)
    bad_ref = int(eager64.size - np.count_nonzero(np.isfinite(eager64)))
    if bad_ref:
        acc.nonfinite_reference += bad_ref
        acc.nonfinite_reference_shapes.append(tag)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(eager64 - got64)
    diff[~np.isfinite(diff)] = np.inf
    stats = error_stats(eager64, got64)
    acc.stats = stats if acc.stats is None else acc.stats.worse(stats)
    if diff.size and diff.max() >= acc.max_abs_err:
        acc.max_abs_err, acc.worst_shape = float(diff.max()), tag
        acc.worst_index = [int(i) for i in np.unravel_index(int(diff.argmax()), diff.shape)]
    scale = channel_max(eager64)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = by_channel(diff).max(axis=1, initial=0.0) / np.maximum(scale, np.finfo(np.float32).tiny)
    acc.max_rel_err = max(acc.max_rel_err, float(rel.max(initial=0.0)))
    cosine = stats.cosine
    acc.min_cosine = math.nan if math.isnan(cosine) or math.isnan(acc.min_cosine) else min(acc.min_cosine, cosine)
    acc.min_sqnr_db = (math.nan if math.isnan(stats.sqnr_db) or math.isnan(acc.min_sqnr_db)
                       else min(acc.min_sqnr_db, stats.sqnr_db))
    fails = _fails(budget, acc, tag, np.asarray(reference, np.float64), eager64, got64, diff, spread)
    if budget.kind == "cosine" and (math.isnan(cosine) or cosine < budget.min_cosine):
        acc.below_budget = True
    if fails.any():
        acc.failing_elements += int(fails.sum())
        acc.failing_shapes.append(tag)


def fold_rows(acc: OutputVerdict, tag: str, check: RowCheck, reference: np.ndarray, eager: np.ndarray,
              got: np.ndarray) -> None:
    """Detection rows (NMS in the graph, an NMS-free head): discrete values — a score at the top-k cut or an NMS
    decision within noise moves whole rows, in eager's own float64 run too — so the family's row check decides;
    the element-wise figures stay for the report."""
    status, message = check(eager, got, reference)
    if status == "failed":
        acc.failing_elements += 1
        acc.failing_shapes.append(f"{tag} ({message})")
    elif status == "undecidable":
        acc.undecided_shapes.append(f"{tag} ({message})")
    if got.shape == eager.shape:
        diff = np.abs(eager.astype(np.float64) - got.astype(np.float64))
        acc.max_abs_err = max(acc.max_abs_err, float(np.nan_to_num(diff, nan=np.inf).max(initial=0.0)))


def judge(probes: Sequence[TruthProbe], run: Runner, names: Sequence[str], budget: Budget, key: Key,
          reference: str = "float64", rows: Mapping[str, RowCheck] | None = None) -> Verdict:
    """`run` on a copy of every probe's input, each output folded against the truth under `budget`.

    `names`: the candidate's output names (labels, in order; the truth's outputs are matched
    by position). `key`: (precision, backend) of the candidate. `rows`: the outputs holding
    detection rows, by name, with the check that compares them (`fold_rows`).
    """
    rows = rows or {}
    accs = [OutputVerdict(n) for n in names]
    for probe in probes:
        refs = list(probe.reference.values())
        eagers = list(probe.eager.values())
        spreads = [probe.spread.get(k) for k in probe.eager]
        try:
            gots = [np.asarray(g) for g in run(probe.x.copy())]
        except Exception as err:  # a backend's own error types: the candidate cannot run at this shape
            for acc in accs:
                record_error(acc, probe.label, str(err).strip().splitlines()[0][:300] if str(err).strip()
                             else type(err).__name__)
            continue
        if len(gots) != len(eagers) or len(eagers) != len(accs):
            for acc in accs:
                record_error(acc, probe.label, f"{len(gots)} outputs, expected {len(eagers)}")
            continue
        for acc, ref, eager, got, spread in zip(accs, refs, eagers, gots, spreads):
            if acc.name in rows:
                fold_rows(acc, probe.label, rows[acc.name], ref, eager, got)
            else:
                fold(acc, budget, probe.label, ref, eager, got, spread)
    noise = {"method": reference, "max_abs": {
        n: max((float(np.max(np.abs(p.eager[k].astype(np.float64) - p.reference[k]), initial=0.0))
                for p in probes if np.issubdtype(p.eager[k].dtype, np.floating)), default=0.0)
        for n, k in zip(names, probes[0].eager) if probes}}
    return Verdict(key[0], key[1], budget, [p.label for p in probes], accs, reference=reference, noise=noise)


__all__ = ["Key", "RowCheck", "Runner", "fold", "fold_rows", "judge", "key_label", "record_error"]

"""The human verdict tables: one block per graph (precision x backend), every line within a terminal's width.

    lines = verdict_tables([fp32, fp16], {"fp16": detections})        # what `export` and `verify` print
    ...
    fp16/onnxruntime-cpu: PASSED  rule: cosine >= 0.9999 against eager fp32, every value finite
      output    max abs  rel/scale     cosine  of limit  worst shape  result
      output0  2.30e+00   4.17e-02  0.9999998       <1%  1x3x640x640  pass
      strict-fp16 copy, same rule: PASSED, lowest cosine 0.9999996
      detections: PASSED  6 of 6 eager boxes found in the fp16 graph (threshold -2%) ...

Columns: `max abs` = max |graph - eager fp32|; `rel/scale` = the same over the output
channel's largest |eager value| (an element near zero would make any rounding look huge);
`of limit` = how much of its rule the graph uses: for fp32 its distance to float64 over the
limit (FACTOR x eager fp32's own distance, per channel), for a cosine budget (1 - cosine) over
(1 - the floor); past 100% fails. A long text is cut at a clause boundary (`fit`), never inside
a word or a number; `verbose` prints every text in full instead.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Mapping, Sequence
from typing import Protocol

from attndeploy.verdict import OutputVerdict, Verdict, key_label

WIDTH = 100
MORE = " ..."
NAME_WIDTH = 24
CLAUSE_KEEPS = 0.75   # a cut at a clause boundary must keep this share of the room, else it is cut at a space
CLAUSE_END = re.compile(r"[,;:.](?= )| (?=\()")   # a cut before ", " "; " ": " ". " or " (": the clause before it stays


class TaskLike(Protocol):
    """A task-level check (`adapters.base.TaskCheck`): its name, verdict and one-line message (and, where it has
    one, its `status`: "passed", "failed" or "undecidable")."""

    name: str
    message: str

    @property
    def passed(self) -> bool: ...


def verdict_word(passed: bool) -> str:
    return "PASSED" if passed else "FAILED"


def task_word(task: TaskLike) -> str:
    """PASSED, FAILED, or UNDECIDABLE where the check could not decide on its inputs (it fails nothing)."""
    status = getattr(task, "status", None)
    return status.upper() if isinstance(status, str) else verdict_word(task.passed)


def fit(text: str, width: int = WIDTH) -> str:
    """`text` in one line of at most `width` characters (see `fit_lines`)."""
    return fit_lines(text, width, 1, "")[0]


def fit_lines(text: str, width: int = WIDTH, lines: int = 2, indent: str = "    ") -> list[str]:
    """`text` wrapped (`wrap`) into at most `lines` lines of `width`: where it is longer, cut at the last clause
    boundary that fits (at a space when that keeps too little), `MORE` marking the cut and open parentheses closed.
    Words, numbers and [index, lists] stay whole."""
    def wrapped(shown: str) -> list[str]:
        return [shown] if lines == 1 and len(shown) <= width else wrap(shown, width, indent)

    whole = wrapped(text)
    if len(whole) <= lines and all(len(line) <= width for line in whole):
        return whole

    def cut_at(stop: int) -> list[str] | None:
        head = text[:stop].rstrip()
        if head.count("[") != head.count("]"):  # inside an index or a shape list: keep it whole
            return None
        shown = wrapped(head + MORE + ")" * max(head.count("(") - head.count(")"), 0))
        return shown if len(shown) <= lines and all(len(line) <= width for line in shown) else None

    clauses = [c for c in (cut_at(m.start()) for m in CLAUSE_END.finditer(text)) if c]
    words = [c for c in (cut_at(m.start()) for m in re.finditer(" ", text)) if c]
    if clauses and sum(map(len, clauses[-1])) >= CLAUSE_KEEPS * width * lines:
        return clauses[-1]
    if words:
        return words[-1]
    return [text[: width - len(MORE)] + MORE]  # one token longer than the line (a path): nothing else to cut at


def wrap(text: str, width: int = WIDTH, indent: str = "    ") -> list[str]:
    """`text` over lines of at most `width`, continuations indented; words and numbers are never split (a token
    longer than a line, a path, is)."""
    return textwrap.wrap(text, width, subsequent_indent=indent, break_on_hyphens=False) or [""]


def _sci(value: float) -> str:
    return str(value) if not math.isfinite(value) else f"{value:.2e}"


def _cosine(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.7f}"


def limit_used(o: OutputVerdict, verdict: Verdict) -> float | None:
    """The share of its rule an output uses (1.0 = at the limit), or None where the rule has no single limit."""
    budget = verdict.budget
    if budget.kind == "float64":
        return o.ratio / budget.factor
    if budget.kind == "cosine" and budget.min_cosine < 1:
        return math.nan if math.isnan(o.min_cosine) else max(1.0 - o.min_cosine, 0.0) / (1.0 - budget.min_cosine)
    return None


def _share(used: float) -> str:
    if not math.isfinite(used):
        return str(used)
    if used == 0:
        return "0%"
    if used < 0.01:
        return "<1%"
    return f"{100 * used:.0f}%" if used < 10 else f"{used:.3g}x"


def _name(name: str) -> str:
    return name if len(name) <= NAME_WIDTH else name[: NAME_WIDTH - 3] + "..."


def output_rows(verdict: Verdict) -> list[str]:
    """The column header and one row per output, right-aligned numbers, widths from the cells."""
    with_limit = any(limit_used(o, verdict) is not None for o in verdict.outputs)
    header = ["output", "max abs", "rel/scale", "cosine"] + (["of limit"] if with_limit else []) + ["worst shape",
                                                                                                   "result"]
    rows = []
    for o in verdict.outputs:
        used = limit_used(o, verdict)
        cells = [_name(o.name), _sci(o.max_abs_err), _sci(o.max_rel_err), _cosine(o.min_cosine)]
        cells += [_share(used) if used is not None else "-"] if with_limit else []
        rows.append(cells + [o.worst_shape or "-", "pass" if o.passed else "FAIL"])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    left = {0, len(header) - 2, len(header) - 1}   # the name, the shape and the result read from the left

    def line(cells: list[str]) -> str:
        return "  " + "  ".join(c.ljust(w) if i in left else c.rjust(w)
                                for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [line(header)] + [line(r) for r in rows]


def verdict_block(verdict: Verdict, title: str = "", shapes: Sequence[str] = (), verbose: bool = False,
                  width: int = WIDTH) -> list[str]:
    """`title` (default "precision/backend", as report.json keys it) with the verdict and its rule, the table, then
    what a reader needs when it failed. `shapes`: the probes already said above (others are listed here)."""
    head = f"{title or key_label((verdict.precision, verdict.backend))}: {verdict_word(verdict.passed)}  " \
           f"rule: {verdict.budget.describe()}"
    lines = [head] if verbose else wrap(head, width)
    if list(verdict.shapes) != list(shapes):
        at = "at " + ", ".join(verdict.shapes) if verdict.shapes else "at no shape"
        lines += ["  " + at] if verbose else wrap("  " + at, width)
    lines += output_rows(verdict)
    if verdict.strict is not None:
        lines.append(f"  strict-fp16 copy, same rule: {verdict_word(verdict.strict.passed)}, lowest cosine "
                     f"{_cosine(verdict.strict.min_cosine)}")
    if verbose:
        return lines + _full_detail(verdict)
    if not verdict.passed:
        why, blame = verdict.failure_message(), verdict.blame
        if blame and why.endswith(blame):  # the module to blame gets its own line
            why = why[: -len(blame)].rstrip("; ")
        lines += fit_lines("  why: " + why, width, 2, "    ")
        lines += [fit("  where: " + blame, width)] if blame else []
    return lines


def _full_detail(verdict: Verdict) -> list[str]:
    """What `--verbose` adds under a block: the fp32 rule's numbers per output, the notes, the whole failure."""
    lines = []
    for o in verdict.outputs:
        if verdict.budget.kind == "float64" and o.limit:
            lines.append(f"  {o.name}: distance to {verdict.reference} {o.graph_distance:.3g} vs eager fp32's "
                         f"{o.eager_distance:.3g} at its worst channel ({o.ratio:.3g}x, limit {verdict.budget.factor:g}x);"
                         f" per-channel limits {o.limit[0]:.3g}..{o.limit[1]:.3g}; worst index {o.worst_index}")
        if o.ill_conditioned_shapes:
            lines.append(f"  {o.name}: eager fp32 is far from float64 at {', '.join(o.ill_conditioned_shapes)}")
        if o.stats is not None:
            lines.append(f"  {o.name}: SQNR {o.stats.sqnr_db:.1f} dB, p99 relative error {o.stats.p99_rel:.3g}")
    lines += [f"  note: {n}" for n in verdict.notes]
    if not verdict.passed:
        lines.append(f"  why: {verdict.failure_message()}")
    return lines


def task_line(task: TaskLike, verbose: bool = False, width: int = WIDTH, label: str = "") -> str:
    """A task check in one line: its name (and `label`), verdict and message (cut to `width` unless `verbose`)."""
    text = f"  {task.name}{f' ({label})' if label else ''}: {task_word(task)}  {task.message}"
    return text if verbose else fit(text, width)


def verdict_tables(verdicts: Sequence[Verdict], tasks: Mapping[str, TaskLike] | None = None, shapes: Sequence[str] = (),
                   verbose: bool = False, width: int = WIDTH) -> list[str]:
    """One block per verdict, blank-line separated; a precision's task check (`tasks[precision]`) under its last
    block. `shapes`: the probes the caller already listed (blocks at other shapes list theirs)."""
    tasks = dict(tasks or {})
    lines: list[str] = []
    for i, verdict in enumerate(verdicts):
        lines += ([""] if lines else []) + verdict_block(verdict, shapes=shapes, verbose=verbose, width=width)
        later = {v.precision for v in verdicts[i + 1:]}
        if verdict.precision in tasks and verdict.precision not in later:
            lines.append(task_line(tasks.pop(verdict.precision), verbose, width))
    for precision, task in tasks.items():  # a task check whose graph has no verdict here
        lines.append(task_line(task, verbose, width, label=precision))
    return lines


def common_shapes(verdicts: Sequence[Verdict]) -> list[str]:
    """The probes every verdict was judged at when they are the same for all (said once, above the blocks)."""
    found = {tuple(v.shapes) for v in verdicts}
    return list(found.pop()) if len(found) == 1 else []


__all__ = ["WIDTH", "TaskLike", "common_shapes", "fit", "fit_lines", "limit_used", "output_rows", "task_line", "task_word",
           "verdict_block", "verdict_tables", "verdict_word", "wrap"]

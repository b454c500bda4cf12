"""Which input shapes a model accepts, learned by probing it in eager mode before choosing the parity sweep.

A stride-32 detector takes H, W multiples of 32, a space-to-depth block even H, W, some
published modules only square inputs or one fixed size, some only the example's batch.
`discover_rule` runs the model (no grad) at a few cheap shapes near the example and
returns a `ShapeRule` with the probes that established it:

    rule = discover_rule(run, (1, 3, 640, 640))
    rule.describe()     # "H, W multiples of 32 (481x321 fails in eager at `model.12` (Concat): ...)"
    rule.sweep((1, 3, 640, 640))   # shapes inside the rule: batch > 1, odd multiples, non-square

`run(shape)` runs the model on a fresh input of `shape` and raises where the model does;
its error message is kept as evidence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from attndeploy.errors import first_line
from attndeploy.shapes import Shape, format_shape

MULTIPLES = (1, 2, 4, 8, 16, 32, 64, 128)
FAILS = " fails in eager"
Run = Callable[[Shape], object]  # raises where the model does; its result is not read


@dataclass(frozen=True)
class ShapeRule:
    """H, W multiples of `multiple` (>= `min_hw`), square only, or only `fixed`; batch only `batch` when set."""

    multiple: int = 1
    min_hw: int = 1
    square: bool = False
    fixed: tuple[int, int] | None = None
    batch: int | None = None
    evidence: tuple[str, ...] = ()

    def accepts(self, shape: Shape) -> bool:
        if self.batch is not None and shape[0] != self.batch:
            return False
        if len(shape) != 4:
            return True
        h, w = shape[2], shape[3]
        if self.fixed is not None:
            return (h, w) == self.fixed
        if self.square and h != w:
            return False
        return h % self.multiple == 0 and w % self.multiple == 0 and min(h, w) >= self.min_hw

    def describe(self) -> str:
        if self.fixed is not None:
            hw = f"fixed H, W = {self.fixed[0]}x{self.fixed[1]}"
        elif self.square:
            hw = "square H = W" + (f", multiples of {self.multiple}" if self.multiple > 1 else "")
        else:
            hw = f"H, W multiples of {self.multiple}" if self.multiple > 1 else "any H, W"
        if self.min_hw > 1 and self.fixed is None:
            hw += f", >= {self.min_hw}"
        batch = f"; batch fixed at {self.batch}" if self.batch is not None else ""
        proof = f" ({'; '.join(self.evidence)})" if self.evidence else ""
        return hw + batch + proof

    def dynamic_axes(self, rank: int) -> list[int]:
        """The input axes that may stay dynamic: batch unless fixed; H, W unless fixed."""
        axes = [] if self.batch is not None else [0]
        if rank == 4 and self.fixed is None:
            axes += [2, 3]
        return axes

    def _fit(self, size: int, odd: bool) -> int:
        units = max(size // self.multiple, -(-self.min_hw // self.multiple), 1)
        if odd and units % 2 == 0:
            units += 1
        return units * self.multiple

    def odd_shape(self, example: Shape) -> tuple[int, int]:
        """(H, W) about 3/4 and 1/2 of the example's, odd multiples of the rule's multiple, non-square."""
        h, w = example[2], example[3]
        if self.fixed is not None:
            return self.fixed
        odd = (self._fit(h * 3 // 4, True), self._fit(w // 2, True))  # as `discover_rule` probes: its run is reused
        if self.square:
            return odd[0], odd[0]
        return odd if odd[0] != odd[1] else (odd[0], odd[1] + 2 * self.multiple)

    def sweep(self, example: Shape) -> list[Shape]:
        """Up to two shapes other than `example`, inside the rule, each cheaper than it to run:

        batch + 1 at odd (multiples of the rule's) non-square H, W about 3/4 and 1/2 of the
        example's; then batch 1 at a wide, non-divisible H, W (about 1/3 and 5/4).
        """
        n = example[0]
        grow = n if self.batch is not None else n + 1
        if len(example) != 4:
            return [(grow, *example[1:])] if grow != n else []
        c, h, w = example[1:]
        if self.fixed is not None:
            return [(grow, c, h, w)] if grow != n else []
        wide = (self._fit(h // 3 + 2, False), self._fit(w + w // 4 + 1, True))
        if self.square:
            wide = (wide[1], wide[1])
        candidates = [(grow, c, *self.odd_shape(example)), (n if self.batch is not None else 1, c, *wide)]
        return [s for s in dict.fromkeys(candidates) if s != tuple(example) and self.accepts(s)]


def _fails(what: str, failed: str) -> str:
    """Evidence in words, `what` ("481x321", "batch 2") + " fails in eager ...". `failed`, the run's error, may name
    its shape already ("1x3x481x321 fails in eager at `model.11` (Concat): ..."): then `what` takes its place."""
    shape, said, rest = failed.partition(FAILS)
    if said and shape and " " not in shape:
        return what + FAILS + rest
    return f"{what}{FAILS}: {failed}"


def _tries(run: Run, shape: Shape) -> str | None:
    """None when `run(shape)` works, else the first line of why not."""
    try:
        run(shape)
    except Exception as err:  # the model's own error is the evidence
        return first_line(err, 200)
    return None


def _probe_size(size: int, k: int, fraction: float) -> int:
    """An odd multiple of `k` near `fraction` of `size` (481 for 640, 3/4, k = 1; 480 for k = 32)."""
    units = max(int(size * fraction) // k, 1)
    return (units if units % 2 else units + 1) * k


def _probe_hw(run: Run, example: Shape) -> tuple[ShapeRule, tuple[int, int], list[str]]:
    """(H, W rule, the (H, W) that proved it, evidence) from probes at the example's batch."""
    n, c, h, w = example
    first_failure = ""
    for square in (False, True):
        for k in MULTIPLES:
            if h % k or w % k or k > min(h, w):
                break
            ph = _probe_size(h, k, 0.75)
            pw = ph if square else _probe_size(w, k, 0.5)
            if not square and pw == ph:
                pw += 2 * k
            if (ph, pw) == (h, w):  # a probe at the example proves nothing
                ph, pw = ph + 2 * k, (pw + 2 * k if square else pw)
            failed = _tries(run, (n, c, ph, pw))
            if failed is None:
                return ShapeRule(k, 1, square), (ph, pw), [first_failure] if first_failure else []
            first_failure = first_failure or _fails(f"{ph}x{pw}", failed)
    return ShapeRule(fixed=(h, w)), (h, w), [first_failure]


def witness(run: Run, example: Shape) -> str:
    """Why any H, W is not enough: the first probe (odd, non-square, about 3/4 and 1/2 of the example) failing in
    eager, in words ("481x321 fails in eager at `model.11` (Concat): ..."); "" when it runs."""
    if len(example) != 4:
        return ""
    n, c, h, w = example
    ph, pw = _probe_size(h, 1, 0.75), _probe_size(w, 1, 0.5)
    failed = _tries(run, (n, c, ph, pw))
    return _fails(f"{ph}x{pw}", failed) if failed else ""


def discover_rule(run: Run, example: Shape, known: ShapeRule | None = None) -> ShapeRule:
    """The `ShapeRule` of a model `run` accepts at `example` (see the module docstring).

    H, W first, at the example's batch (`known`, a registry module's declared rule, skips
    those probes), then batch + 1 at the H, W that passed: that probe is the sweep's first
    shape, so its eager run is not repeated. Where batch + 1 fails at the declared rule's H, W,
    that H, W is tried at the example's batch: if it fails there too, the model does not keep
    the declared rule (a block needing more than the stride), which the evidence says, and its
    H, W are probed as for a model without one; the batch is not blamed.
    """
    evidence: list[str]
    if len(example) != 4:
        failed = _tries(run, (example[0] + 1, *example[1:]))
        evidence = [_fails(f"batch {example[0] + 1}", failed)] if failed else []
        return ShapeRule(batch=example[0] if failed else None, evidence=tuple(evidence))
    if known is not None:
        rule, evidence = known, list(known.evidence)
        hw = rule.odd_shape(example)
    else:
        rule, hw, evidence = _probe_hw(run, example)
    n, c = example[0], example[1]
    failed = _tries(run, (n + 1, c, *hw))
    if failed is not None and known is not None and (at_example_batch := _tries(run, (n, c, *hw))) is not None:
        said = f"{hw[0]}x{hw[1]} (inside the declared rule: {replace(known, evidence=()).describe()})"
        rule, hw, probed = _probe_hw(run, example)
        evidence = [_fails(said, at_example_batch), *probed]
        failed = _tries(run, (n + 1, c, *hw))
    if failed is not None:
        evidence.append(_fails(f"batch {n + 1} ({format_shape((n + 1, c, *hw))})", failed))
    return ShapeRule(rule.multiple, rule.min_hw, rule.square, rule.fixed, n if failed else None, tuple(evidence))


def shape_list(shapes: list[Shape]) -> str:
    return ", ".join(format_shape(s) for s in shapes)

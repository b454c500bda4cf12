"""Lint findings about ultralytics heads, said the way that fixes them.

`attndeploy.lint.torch_lint` reports tensors kept as plain attributes and used in forward
("missing from the state_dict; make it a Parameter"). On an ultralytics head that advice
is wrong:

- `Detect.anchors` / `Detect.strides` are the anchor grid the head builds from the input's
  H, W. With `dynamic=False` it is built once and reused, so a trace bakes the example's
  grid into the graph (which then fails or is wrong at any other size). The fix is to keep
  anchors dynamic — `<head>.dynamic = True`, what ultralytics' exporter sets for
  `dynamic=True` and what the ultralytics adapter does when it prepares the model.
- `Detect.stride` (8, 16, 32; the same tensor as the model's `.stride`) is fixed when the
  model is built: a constant in the graph by design. Not a hazard; dropped.
- the trace lint's "shape-dependent control flow" at the head's `if self.dynamic or
  self.shape != shape` is the same baked grid seen from the branch: folded into it.

    findings = refine_findings(model, lint_model(model, example))

Heads are recognised by class (defined in `ultralytics.nn.modules.head`, or a subclass),
without importing ultralytics. Other findings pass through unchanged, in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from torch import nn

from attndeploy.lint.torch_lint import TorchFinding

HEAD_MODULE = "ultralytics.nn.modules.head"
PLAIN_ATTRIBUTE = "plain tensor attribute"
SHAPE_FLOW = "shape-dependent control flow"  # attndeploy.lint.trace_lint's TracerWarning finding
ANCHOR_ATTRS = ("anchors", "strides")
CONSTANT_ATTRS = ("stride",)


def ultralytics_heads(model: nn.Module) -> dict[str, nn.Module]:
    """Module path -> head, for every module whose class (or a base class) is an ultralytics head."""
    return {path: m for path, m in model.named_modules()
            if any(c.__module__ == HEAD_MODULE for c in type(m).__mro__)}


def baked_anchors_finding(path: str, head: nn.Module, base: TorchFinding) -> TorchFinding:
    """The finding for head `path` whose anchor grid is reused from an earlier input (`dynamic=False`)."""
    kind = type(head).__name__
    return replace(base, path=path, hazard="baked anchors",
                   call=f"{kind} head {path}'s anchors/strides, cached from the example (dynamic=False),",
                   consequence="are exported as constants for the example's H, W: the graph fails or is wrong at "
                               "any other input size",
                   rewrite=None,
                   hint=f"keep anchors dynamic: set `{path}.dynamic = True` on the {kind} head before exporting (as "
                        "ultralytics' exporter does for dynamic=True), or export the ultralytics model itself "
                        "(YOLO(...) or its .model) so attndeploy prepares its head; a static export (--static) "
                        "bakes them on purpose")


def _anchor_branch(site: str) -> bool:
    """Whether `site` (``file:line``) is the head's anchor-cache branch (`if self.dynamic or self.shape != shape`)."""
    import linecache

    filename, _, line = site.rpartition(":")
    return line.isdigit() and "self.dynamic" in linecache.getline(filename, int(line))


def refine_findings(model: nn.Module, findings: Sequence[TorchFinding]) -> list[TorchFinding]:
    """`findings` with plain-attribute findings used in ultralytics heads replaced (anchors) or dropped (stride).

    A finding's `path` is the module whose forward used the tensor; its `call` names the
    attribute (`model.22.anchors`, or `stride` when the head shares the root's tensor).
    """
    heads = ultralytics_heads(model)
    if not heads:
        return list(findings)
    out: list[TorchFinding] = []
    baked: set[str] = set()
    for f in findings:
        attr = f.call.rpartition(".")[2]
        if f.hazard == SHAPE_FLOW and f.path in heads and _anchor_branch(f.site):
            if f.path not in baked:
                baked.add(f.path)
                out.append(baked_anchors_finding(f.path, heads[f.path], f))
        elif f.hazard != PLAIN_ATTRIBUTE or f.path not in heads:
            out.append(f)
        elif attr in ANCHOR_ATTRS:
            if f.path not in baked:
                baked.add(f.path)
                out.append(baked_anchors_finding(f.path, heads[f.path], f))
        elif attr not in CONSTANT_ATTRS:
            out.append(f)
    return out


__all__ = ["baked_anchors_finding", "refine_findings", "ultralytics_heads"]

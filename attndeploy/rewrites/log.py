"""`RewriteLog`: which export-time rewrites fired, how, and where (for the export report)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch

MAX_SITES = 5  # call sites kept per kind


@dataclass
class RewriteLog:
    """What `export_rewrites` routed while it was active.

    `counts`: kind (a `Patch.kind`, e.g. ``"adaptive_avg_pool2d"``) -> calls routed to the
    export-friendly form. `modes`: ``"kind:how"`` (e.g. ``"adaptive_avg_pool2d:matrix"``) ->
    calls. `sites`: kind -> the first few user call sites (``file:line``). Calls the
    original handles unchanged (e.g. `F.adaptive_avg_pool2d(x, 1)`) are not counted.
    `dtype` and `device` are the example input's: tensor factories are pinned to them.
    """

    dtype: torch.dtype
    device: torch.device
    counts: Counter[str] = field(default_factory=Counter)
    modes: Counter[str] = field(default_factory=Counter)
    sites: dict[str, list[str]] = field(default_factory=dict)

    def record(self, kind: str, how: str, site: str = "") -> None:
        """Count one routed call of `kind`, done as `how`, made at `site`."""
        self.counts[kind] += 1
        self.modes[f"{kind}:{how}"] += 1
        kept = self.sites.setdefault(kind, [])
        if site and site not in kept and len(kept) < MAX_SITES:
            kept.append(site)

    @property
    def fired(self) -> bool:
        """True if any rewrite routed at least one call."""
        return bool(self.counts)

    def summary(self) -> str:
        """One line, e.g. ``unfold x3 (slices 3); linspace x2 (arange 2)``; empty if nothing fired."""
        parts = []
        for kind, n in sorted(self.counts.items()):
            hows = ", ".join(f"{m.split(':', 1)[1]} {c}" for m, c in sorted(self.modes.items())
                             if m.split(":", 1)[0] == kind)
            parts.append(f"{kind} x{n} ({hows})")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: counts, modes and call sites per kind."""
        return {"counts": dict(sorted(self.counts.items())), "modes": dict(sorted(self.modes.items())),
                "sites": {k: list(v) for k, v in sorted(self.sites.items())}}


_ACTIVE: list[RewriteLog] = []


def active() -> RewriteLog | None:
    """The innermost active log, or None outside `export_rewrites`."""
    return _ACTIVE[-1] if _ACTIVE else None

"""`export_rewrites`: while exporting, route hazardous calls to exact export-friendly forms.

One table, `PATCHES`, says what is patched, where and with what. Patching the attribute
on its owner module reaches every caller that looks it up at call time: user code
(``F.adaptive_avg_pool2d``, ``torch.linspace``), torch's own modules (``nn.AdaptiveAvgPool2d``,
``nn.Unfold``, ``nn.AvgPool2d`` call ``F.*`` at run time) and any class, ours or not.
Names bound at import time (``from torch.nn.functional import unfold``) are not reached:
`attndeploy.lint.torch_lint` reports those calls.

Everything is restored on exit, also on error. Nested uses share one installation;
the innermost example's dtype and device apply. The patches are process-global: do
not run other torch work in parallel threads while a context is active.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from attndeploy.errors import UsageError, require
from attndeploy.rewrites import factories, pools, unfold
from attndeploy.rewrites.dims import Caller
from attndeploy.rewrites.log import _ACTIVE, RewriteLog, active


@dataclass(frozen=True)
class Patch:
    """One patched attribute: `owner.attr` is replaced by a wrapper that calls `rewrite`.

    `rewrite(original, log, caller, *args, **kwargs)` either returns the exact
    export-friendly result (and records it in the log) or calls `original` unchanged.
    """

    kind: str
    owner: str
    attr: str
    rewrite: Callable[..., Any]
    routes: str


PATCHES: tuple[Patch, ...] = (
    Patch("adaptive_avg_pool2d", "torch.nn.functional", "adaptive_avg_pool2d", pools.adaptive_avg_pool2d,
          "sizes: literal 1 -> mean; the input's own dim (x.size()) or None -> identity; any other size -> "
          "averaging matrices built from the runtime H, W (deploy.pooling); (1, 1) -> torch (GlobalAveragePool)"),
    Patch("adaptive_max_pool2d", "torch.nn.functional", "adaptive_max_pool2d", pools.adaptive_max_pool2d,
          "as adaptive_avg_pool2d, with amax and exact bin-wise max; return_indices=True -> torch"),
    Patch("avg_pool2d", "torch.nn.functional", "avg_pool2d", pools.avg_pool2d,
          "a window equal to the whole input (kernel from x.size()), no padding -> mean over (H, W); else torch"),
    Patch("max_pool2d", "torch.nn.functional", "max_pool2d", pools.max_pool2d,
          "a window equal to the whole input, no padding or dilation -> amax over (H, W); else torch"),
    Patch("unfold", "torch.nn.functional", "unfold", unfold.unfold,
          "im2col (nn.Unfold, F.unfold) -> kh*kw shifted strided slices of the zero-padded input"),
    Patch("linspace", "torch", "linspace", factories.linspace,
          "linspace -> arange formula in the example's dtype on its device (steps stays dynamic)"),
    Patch("arange", "torch", "arange", factories.arange,
          "no/fixed device -> the example's device; floating result without dtype -> the example's dtype"),
    Patch("zeros", "torch", "zeros", factories.zeros,
          "no/fixed device -> the example's device; no dtype -> the example's floating dtype"),
    Patch("ones", "torch", "ones", factories.ones,
          "no/fixed device -> the example's device; no dtype -> the example's floating dtype"),
)

DEFORM_CONV_NOTE = ("torchvision.ops.deform_conv2d is lowered by attndeploy.lowering.deformconv "
                    "(export-time symbolics), wired by the export pipeline, not by export_rewrites")


def _wrapper(original: Callable[..., Any], rewrite: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def patched(*args: Any, **kwargs: Any) -> Any:
        log = active()
        if log is None:
            return original(*args, **kwargs)
        frame = None if torch.compiler.is_compiling() else sys._getframe(1)
        return rewrite(original, log, Caller(frame), *args, **kwargs)

    patched.__attndeploy_original__ = original  # type: ignore[attr-defined]
    return patched


def _install() -> list[tuple[Any, str, Any]]:
    """Patch every `PATCHES` entry; returns (owner, attr, original) to restore."""
    saved: list[tuple[Any, str, Any]] = []
    try:
        for patch in PATCHES:
            owner = importlib.import_module(patch.owner)
            original = getattr(owner, patch.attr)
            setattr(owner, patch.attr, _wrapper(original, patch.rewrite))
            saved.append((owner, patch.attr, original))
    except BaseException:
        _restore(saved)
        raise
    return saved


def _restore(saved: list[tuple[Any, str, Any]]) -> None:
    for owner, attr, original in reversed(saved):
        setattr(owner, attr, original)


_INSTALLED: list[list[tuple[Any, str, Any]]] = []


@contextmanager
def export_rewrites(example: torch.Tensor, deform_conv: str | None = None) -> Iterator[RewriteLog]:
    """Route hazardous calls (see `PATCHES`) to exact export-friendly forms while active.

    Args:
        example: the export's example input; tensor factories are pinned to its dtype
            (floating results) and device.
        deform_conv: reserved for the `torchvision.ops.deform_conv2d` lowering, which
            the export pipeline wires from `attndeploy.lowering.deformconv`; only None
            is accepted here.

    Yields:
        A `RewriteLog` that counts, per kind, the calls routed (for the export report).

    Enter it around the exporter call only: eager reference outputs must come from the
    untouched functions.
    """
    require(isinstance(example, torch.Tensor), "export_rewrites needs the example input tensor",
            "a torch.Tensor", type(example).__name__)
    if deform_conv is not None:
        raise UsageError("export_rewrites does not lower deform_conv2d", "deform_conv=None", repr(deform_conv),
                         DEFORM_CONV_NOTE)
    log = RewriteLog(dtype=example.dtype, device=example.device)
    if not _INSTALLED:
        _INSTALLED.append(_install())
    else:
        _INSTALLED.append([])
    _ACTIVE.append(log)
    try:
        yield log
    finally:
        _ACTIVE.pop()
        _restore(_INSTALLED.pop())


def patch_table() -> list[dict[str, str]]:
    """The patch table as rows (kind, patched, routes) for docs and reports."""
    return [{"kind": p.kind, "patched": f"{p.owner}.{p.attr}", "routes": p.routes} for p in PATCHES]

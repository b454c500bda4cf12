"""The matrix grid: which modules, opsets, exporters, axes and TensorRT lint versions.

The same arguments come from the command line and from the README's start marker
(`<!-- matrix:start --opsets 13,17,18,20 -->`), so a test can re-run exactly the grid
the README shows; `Grid.argv()` writes them back in canonical form.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

from attndeploy.argparsing import UsageErrorParser
from attndeploy.defaults import CONCRETE_EXPORTERS, MAX_OPSET, MIN_OPSET
from attndeploy.errors import require, unknown_name
from attndeploy.registry import get_spec, list_modules

DEFAULT_OPSETS = (13, 16, 17, 18, 19, 20)
MATRIX_EXPORTERS = CONCRETE_EXPORTERS
AXES = ("static", "dynamic")


def trt_versions() -> tuple[str, ...] | None:
    """TensorRT generations the lint knows, or None when the lint is not importable."""
    try:
        from attndeploy.lint.trt_support import TRT_VERSIONS
    except ImportError:
        return None
    return tuple(TRT_VERSIONS)


@dataclass(frozen=True)
class Cell:
    """One independent export: registry name x opset x exporter x static/dynamic."""

    module: str
    opset: int
    exporter: str
    dynamic: bool

    @property
    def axes(self) -> str:
        return "dynamic" if self.dynamic else "static"


@dataclass(frozen=True)
class Grid:
    """`names` empty means the whole registry; `trt` empty means no lint columns."""

    names: tuple[str, ...] = ()
    opsets: tuple[int, ...] = DEFAULT_OPSETS
    exporters: tuple[str, ...] = MATRIX_EXPORTERS
    axes: tuple[str, ...] = AXES
    trt: tuple[str, ...] | None = None

    def modules(self) -> list[str]:
        return list(self.names) or list_modules()

    def trt_columns(self) -> tuple[str, ...]:
        return self.trt if self.trt is not None else (trt_versions() or ("8.6", "10", "11"))

    def cells(self) -> list[Cell]:
        """Every cell, module-major (the order of the rows, then of the columns)."""
        return [Cell(m, o, e, a == "dynamic") for m in self.modules() for e in self.exporters for a in self.axes
                for o in self.opsets]

    def argv(self) -> list[str]:
        """The non-default grid arguments, canonical (what the README's start marker holds)."""
        args: list[str] = list(self.names)
        if self.opsets != DEFAULT_OPSETS:
            args += ["--opsets", ",".join(map(str, self.opsets))]
        if self.exporters != MATRIX_EXPORTERS:
            args += ["--exporters", ",".join(self.exporters)]
        if self.axes != AXES:
            args += ["--axes", ",".join(self.axes)]
        if self.trt is not None:
            args += ["--trt", ",".join(self.trt) or "none"]
        return args


def _csv(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def add_grid_arguments(p: argparse.ArgumentParser) -> None:
    """NAMES, --opsets, --exporters, --axes, --trt (all default None: `grid_from_args` fills defaults)."""
    p.add_argument("names", nargs="*", metavar="NAME", help="registry names (default: all)")
    p.add_argument("--opsets", default=None, metavar="N[,N...]",
                   help=f"opsets (default {','.join(map(str, DEFAULT_OPSETS))})")
    p.add_argument("--exporters", default=None, metavar="E[,E...]", help="torchscript,dynamo (default both)")
    p.add_argument("--axes", default=None, metavar="A[,A...]", help="static,dynamic (default both)")
    p.add_argument("--trt", default=None, metavar="V[,V...]",
                   help="TensorRT versions to lint the passing graphs for (default 8.6,10,11; 'none' for no columns)")


def grid_given(ns: argparse.Namespace) -> bool:
    return bool(ns.names) or any(getattr(ns, k) is not None for k in ("opsets", "exporters", "axes", "trt"))


def grid_from_args(ns: argparse.Namespace) -> Grid:
    """Validate parsed grid arguments; `UsageError` names the bad one (unknown names suggest the closest)."""
    for name in ns.names:
        get_spec(name)
    opsets: Sequence[int] = DEFAULT_OPSETS
    if ns.opsets is not None:
        parts = _csv(ns.opsets)
        require(bool(parts) and all(p.isdigit() for p in parts), "--opsets must be integers joined by ','",
                "e.g. 13,17,18,20", repr(ns.opsets))
        opsets = sorted({int(p) for p in parts})
        bad = [o for o in opsets if not MIN_OPSET <= o <= MAX_OPSET]
        require(not bad, "--opsets must lie in the range attndeploy exports", f"{MIN_OPSET}..{MAX_OPSET}", bad)
    exporters = tuple(_csv(ns.exporters)) if ns.exporters is not None else MATRIX_EXPORTERS
    for e in exporters:
        if e not in MATRIX_EXPORTERS:
            raise unknown_name("exporter", e, MATRIX_EXPORTERS)
    axes = tuple(_csv(ns.axes)) if ns.axes is not None else AXES
    for a in axes:
        if a not in AXES:
            raise unknown_name("axes", a, AXES)
    require(bool(exporters) and bool(axes), "--exporters and --axes must name at least one",
            "e.g. torchscript / dynamic", f"{ns.exporters!r} / {ns.axes!r}")
    trt: tuple[str, ...] | None = None
    if ns.trt is not None:
        trt = () if ns.trt.strip().lower() == "none" else tuple(_csv(ns.trt))
        known = trt_versions()
        for v in trt:
            if known is not None and v not in known:
                raise unknown_name("TensorRT version (--trt)", v, known)
    return Grid(tuple(dict.fromkeys(ns.names)), tuple(opsets), tuple(dict.fromkeys(exporters)),
                tuple(a for a in AXES if a in axes), trt)


def parse_grid(argv: Sequence[str]) -> Grid:
    """A `Grid` from argument strings such as a README start marker's (`["--opsets", "13,17"]`)."""
    parser = UsageErrorParser(prog="attndeploy matrix", add_help=False)
    add_grid_arguments(parser)
    return grid_from_args(parser.parse_args(list(argv)))

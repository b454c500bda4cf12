"""Shape-dependent Python control flow, found by reading a module class's `forward` (ast).

An exporter runs `forward` once, at the example's sizes. A Python `if`/`while`/``a if c
else b`` on a tensor size takes the example's branch: TorchScript records only that branch
(other sizes run the wrong code), dynamo specializes the size (the axis stops being
dynamic, or the export fails). A ``for`` over ``range(<size>)`` is unrolled for the
example's size.

Sizes are what ``x.shape`` / ``x.size()`` / ``x.numel()`` give (indexed,
sliced or unpacked: ``b, c, h, w = x.size()``), and names computed from them with
arithmetic. Not sizes: the rank (``x.dim()``, ``x.ndim``, ``len(x.shape)``), the channel
axis (``x.shape[1]``, or ``c`` in a 4-name unpack: never a dynamic axis of an NCHW
export), sizes of ``self.`` attributes (weights, buffers: fixed), ``len(...)`` (mostly of
lists; the trace check catches ``len`` of a tensor). Only ``forward`` itself is read, not
the helpers it calls (the trace check catches those when they run).
"""

from __future__ import annotations

import ast
import functools
import inspect
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

CHANNEL_AXIS = 1
_SIZE_ATTRS = ("shape",)
_SIZE_METHODS = ("size", "numel")
_ARITH_CALLS = ("int", "min", "max", "round", "abs", "float", "floor", "ceil", "sqrt")


@dataclass(frozen=True)
class Branch:
    """One statement of a `forward` whose control flow reads a tensor size."""

    kind: str      # "if" | "while" | "conditional expression" | "for"
    test: str      # its source, e.g. "h != self.dct_h or w != self.dct_w"
    file: str
    line: int

    @property
    def site(self) -> str:
        return f"{self.file}:{self.line}"


def _root_name(node: ast.AST) -> str:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else ""


def _constant_index(node: ast.AST) -> int | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, int) else None


class _Sizes:
    """The names of one `forward` bound to tensor sizes."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.fixed: set[str] = set()   # names bound to a fixed size (the channel axis)

    def reads_fixed(self, node: ast.AST) -> bool:
        """Whether `node` reads a size on a fixed axis (channels, a weight's shape) or the rank."""
        for n in ast.walk(node):
            if isinstance(n, ast.Name) and n.id in self.fixed:
                return True
            if isinstance(n, ast.Attribute) and n.attr in (*_SIZE_ATTRS, "ndim"):
                return True
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in (*_SIZE_METHODS, "dim"):
                return True
        return False

    def is_size(self, node: ast.AST) -> bool:  # noqa: PLR0911  (one case per expression form)
        """Whether `node` evaluates to a (dynamic) tensor size or a tuple of them."""
        if isinstance(node, ast.Name):
            return node.id in self.names
        if isinstance(node, ast.Attribute) and node.attr in _SIZE_ATTRS:
            return _root_name(node) not in ("self", "")
        if isinstance(node, ast.Subscript):
            index = _constant_index(node.slice)
            return self.is_size(node.value) and index != CHANNEL_AXIS
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in _SIZE_METHODS:
                axis = _constant_index(node.args[0]) if node.args else None
                return _root_name(func.value) not in ("self", "") and axis != CHANNEL_AXIS
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            return name in _ARITH_CALLS and any(self.is_size(a) for a in node.args)
        if isinstance(node, ast.BinOp):
            return self.is_size(node.left) or self.is_size(node.right)
        if isinstance(node, ast.UnaryOp):
            return self.is_size(node.operand)
        return False

    def reads_size(self, node: ast.AST) -> bool:
        """Whether any part of expression `node` is a size (not looking inside a channel size or a rank)."""
        if self.is_size(node):
            return True
        if isinstance(node, ast.Subscript) and self.is_size(node.value):
            return False  # the channel axis of a size
        if isinstance(node, ast.Call) and (
                (isinstance(node.func, ast.Attribute) and node.func.attr in _SIZE_METHODS)
                or (isinstance(node.func, ast.Name) and node.func.id == "len")):
            return False  # x.size(1), len(x.shape)
        return any(self.reads_size(child) for child in ast.iter_child_nodes(node))

    def bind(self, target: ast.AST, value: ast.AST) -> None:
        if isinstance(target, ast.Name):
            self.names.discard(target.id)
            self.fixed.discard(target.id)
            if self.is_size(value):
                self.names.add(target.id)
            elif self.reads_fixed(value) and not self.reads_size(value):
                self.fixed.add(target.id)
        elif isinstance(target, (ast.Tuple, ast.List)) and self.is_size(value):
            unpacked = target.elts
            for i, element in enumerate(unpacked):
                channel = len(unpacked) == 4 and i == CHANNEL_AXIS
                if isinstance(element, ast.Name):
                    (self.fixed if channel else self.names).add(element.id)


def _branches(tree: ast.AST, sizes: _Sizes) -> list[tuple[str, ast.AST, int]]:
    found: list[tuple[str, ast.AST, int]] = []
    for node in ast.walk(tree):  # breadth-first; bindings are collected in source order below
        if isinstance(node, (ast.If, ast.While)) and sizes.reads_size(node.test):
            found.append(("if" if isinstance(node, ast.If) else "while", node.test, node.lineno))
        elif isinstance(node, ast.IfExp) and sizes.reads_size(node.test):
            found.append(("conditional expression", node.test, node.lineno))
        elif isinstance(node, ast.For) and isinstance(node.iter, ast.Call) and \
                isinstance(node.iter.func, ast.Name) and node.iter.func.id == "range" and \
                any(sizes.reads_size(a) for a in node.iter.args):
            found.append(("for", node.iter, node.lineno))
    return sorted(found, key=lambda b: b[2])


def _collect_sizes(tree: ast.AST) -> _Sizes:
    sizes = _Sizes()
    assigns = [n for n in ast.walk(tree) if isinstance(n, (ast.Assign, ast.AnnAssign, ast.AugAssign))]
    for _ in range(2):  # a second pass for names bound from names bound later in walk order
        for node in sorted(assigns, key=lambda n: (n.lineno, n.col_offset)):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    sizes.bind(target, node.value)
            elif node.value is not None and isinstance(node.target, ast.Name) and sizes.is_size(node.value):
                sizes.names.add(node.target.id)
    return sizes


def shape_branches(cls: type) -> tuple[Branch, ...]:
    """The branches and loops on tensor sizes in `cls.forward` (empty if its source is unavailable).

    The forward a class inherits is read where it is defined; torch's own forwards are skipped.
    """
    forward = getattr(cls, "forward", None)
    if forward is None or getattr(forward, "__module__", "").startswith("torch."):
        return ()
    return _forward_branches(forward)


@functools.lru_cache(maxsize=512)
def _parsed(code: object) -> tuple[ast.AST, _Sizes, int] | None:
    """(ast, sizes, first line) of a function's source; None if unavailable."""
    try:
        lines, first = inspect.getsourcelines(code)  # type: ignore[arg-type]
        tree = ast.parse(textwrap.dedent("".join(lines)))
    except (OSError, TypeError, SyntaxError, IndentationError):
        return None
    return tree, _collect_sizes(tree), first


def size_use(code: object, line: int) -> str:
    """What the statement at `line` of function `code` reads: "dynamic" (a size on a dynamic axis),
    "fixed" (only sizes on fixed axes: channels, weights, the rank), "none", or "unknown" (no source)."""
    parsed = _parsed(code)
    if parsed is None:
        return "unknown"
    tree, sizes, first = parsed
    statements = [n for n in ast.walk(tree) if isinstance(n, ast.stmt) and not isinstance(
        n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.lineno <= line - first + 1 <= (n.end_lineno or n.lineno)]
    if not statements:
        return "unknown"
    statement = max(statements, key=lambda n: n.lineno)  # the innermost
    parts = [statement.test] if isinstance(statement, (ast.If, ast.While)) else [statement]
    if any(sizes.reads_size(p) for p in parts):
        return "dynamic"
    return "fixed" if any(sizes.reads_fixed(p) for p in parts) else "none"


@functools.lru_cache(maxsize=512)
def _forward_branches(forward: Callable[..., Any]) -> tuple[Branch, ...]:
    try:
        lines, first = inspect.getsourcelines(forward)
        file = inspect.getsourcefile(forward) or ""
    except (OSError, TypeError):
        return ()
    source = textwrap.dedent("".join(lines))
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return ()
    sizes = _collect_sizes(tree)
    return tuple(Branch(kind, (ast.get_source_segment(source, test) or "")[:80], file, first + line - 1)
                 for kind, test, line in _branches(tree, sizes))


__all__ = ["Branch", "shape_branches", "size_use"]

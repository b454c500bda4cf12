"""Which PyTorch module is running: a path stack kept by forward pre/post hooks on every module.

`ModuleStack(model)` is a context manager: inside it, `stack.current` is the dotted path of
the innermost module whose forward is running (``""`` for the root, as in
`model.named_modules()`). Optional callbacks see each call:

- `on_enter(path, module, args, kwargs)` before a module's forward (its path already pushed),
- `on_leave(path, module, args, kwargs, output)` after it (its path still on the stack).

The hooks are removed on exit, even on error; a module that raises leaves its path on the
stack, so `current` names where the run failed. Modules called through `.forward(...)`
directly, or scripted modules, are not seen (hooks only fire through `__call__`).
"""

from __future__ import annotations

import functools
import inspect
import linecache
import os
import re
from collections.abc import Callable
from types import TracebackType
from typing import Any

from torch import nn

Enter = Callable[[str, nn.Module, tuple[Any, ...], dict[str, Any]], None]
Leave = Callable[[str, nn.Module, tuple[Any, ...], dict[str, Any], Any], None]


class ModuleStack:
    """The module path stack of one model run (see the module docstring)."""

    def __init__(self, model: nn.Module, on_enter: Enter | None = None, on_leave: Leave | None = None) -> None:
        self.model = model
        self.on_enter, self.on_leave = on_enter, on_leave
        self.stack: list[str] = [""]
        # every path, shared modules included (ultralytics gives every Conv the same SiLU as `.act`)
        self.modules: dict[str, nn.Module] = dict(model.named_modules(remove_duplicate=False))
        self._paths: dict[int, list[str]] = {}
        for path, module in self.modules.items():
            self._paths.setdefault(id(module), []).append(path)
        self._handles: list[Any] = []

    @property
    def current(self) -> str:
        return self.stack[-1]

    def where(self) -> str:
        """The running module as "`model.12` (Concat)" (`<root>` for the model itself): where a run failed."""
        path = self.current
        return f"`{path or '<root>'}` ({type(self.modules[path]).__name__})"

    @property
    def parent(self) -> str:
        """The path below the current one (the caller of the running module)."""
        return self.stack[-2] if len(self.stack) > 1 else ""

    def path_of(self, module: nn.Module) -> str:
        """`module`'s path in this call: for a module held under several paths, the one under the running module."""
        paths = self._paths[id(module)]
        if len(paths) == 1:
            return paths[0]
        caller = self.current
        below = [p for p in paths if caller == "" or p.startswith(caller + ".")]
        return min(below, key=lambda p: p.count("."), default=paths[0])

    def _enter(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        path = self.path_of(module)
        self.stack.append(path)
        if self.on_enter is not None:
            self.on_enter(path, module, args, kwargs)

    def _leave(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        try:
            if self.on_leave is not None:
                self.on_leave(self.current, module, args, kwargs, output)
        finally:
            if len(self.stack) > 1:
                self.stack.pop()

    def __enter__(self) -> ModuleStack:
        for module in self.model.modules():  # once per module object
            self._handles.append(module.register_forward_pre_hook(self._enter, with_kwargs=True))
            self._handles.append(module.register_forward_hook(self._leave, with_kwargs=True))
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


_TOP_LEVEL_CLASS = re.compile(r"class\s+(\w+)\b")


def class_site(cls: type) -> tuple[str, int]:
    """(source file, line of the ``class`` statement, or of its first decorator, as `inspect` gives it) of `cls`;
    ("", 0) when the source is not available."""
    try:
        source = inspect.getsourcefile(cls) or ""
        line = _class_lines(source, os.path.getmtime(source)).get(cls.__qualname__, -1) if source else -1
        return source, line if line > 0 else inspect.getsourcelines(cls)[1]
    except (OSError, TypeError):
        return "", 0


@functools.lru_cache(maxsize=64)
def _class_lines(source: str, mtime: float) -> dict[str, int]:
    """{name: first line} of the top-level classes of the file `source`, read once per version of the file
    (`inspect.getsourcelines` parses the whole file for each class: a YOLO's 19 classes took 0.5 s); a class
    statement's decorators above it count, as `inspect` counts them; -1 for a name found twice."""
    lines: dict[str, int] = {}
    text = linecache.getlines(source)
    for number, line in enumerate(text, 1):
        found = _TOP_LEVEL_CLASS.match(line)
        if found:
            first = above = number
            while above > 1 and text[above - 2][:1] in ("@", " ", "\t", ")"):  # a decorator, perhaps on lines
                above -= 1
                first = above if text[above - 1].startswith("@") else first
            name = found.group(1)
            lines[name] = -1 if name in lines else first   # twice (a redefinition, or text in a string): ask inspect
    return lines


def forward_site(cls: type) -> tuple[str, int]:
    """(source file, line of the ``def forward``) of `cls` (the one it inherits if it defines none)."""
    forward = inspect.unwrap(getattr(cls, "forward", None))  # type: ignore[arg-type]
    code = getattr(forward, "__code__", None)
    try:
        return inspect.getsourcefile(forward) or "", code.co_firstlineno if code else inspect.getsourcelines(forward)[1]
    except (OSError, TypeError):
        return "", 0

"""`class_site`: where a class is defined, read once per file, and the same line `inspect` gives."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys

import attndeploy
from attndeploy.modulepath import class_site

PLANTED = '''"""A docstring.

class Quoted:  # inside a string, not a class
"""
import dataclasses


def deco(*args, **kwargs):
    return lambda cls: cls


@deco(
    "a decorator over lines",
    flag=True,
)
class Decorated:
    class Inner:
        pass


class Plain:
    @staticmethod
    def method():
        pass


@dataclasses.dataclass
class Data:
    x: int = 0


def factory():
    class Local:
        pass
    return Local


class Quoted:
    pass
'''


def _inspect_site(cls: type) -> tuple[str, int]:
    try:
        return inspect.getsourcefile(cls) or "", inspect.getsourcelines(cls)[1]
    except (OSError, TypeError):
        return "", 0


def test_class_site_matches_inspect_on_planted_classes(tmp_path, monkeypatch):
    (tmp_path / "planted_classes.py").write_text(PLANTED)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("planted_classes")
    try:
        classes = [module.Decorated, module.Decorated.Inner, module.Plain, module.Data, module.factory(),
                   module.Quoted]
        assert [class_site(c) for c in classes] == [_inspect_site(c) for c in classes]
        assert class_site(module.Decorated)[1] == 12 and class_site(module.Plain)[1] == 21
    finally:
        sys.modules.pop("planted_classes", None)


def test_class_site_matches_inspect_on_every_class_of_attndeploy():
    """(torch.nn, torchvision and ultralytics too, 1416 classes, when measured; 4 s of inspect, not run here)"""
    modules = [importlib.import_module(info.name) for info in pkgutil.walk_packages(attndeploy.__path__, "attndeploy.")
               if not info.name.endswith("__main__")]
    classes = {c for m in modules for c in vars(m).values() if inspect.isclass(c) and c.__module__ == m.__name__}
    assert len(classes) > 150
    assert [c.__qualname__ for c in classes if class_site(c) != _inspect_site(c)] == []

"""What a source string names, decided in one place: `classify_source`.

    classify_source("cbam").kind                      # SourceKind.REGISTRY
    classify_source("mypkg.models:build")             # MODULE, location "mypkg.models", factory "build"
    classify_source(r"C:\\nets\\net.py:Net.build")     # FILE, location "C:\\nets\\net.py", factory "Net.build"
    classify_source("runs/yolov8n-cbam.YAML").kind    # YAML
    classify_source("best.pt").label                  # "best"

A leaf module (no torch, no registry): the CLI, the recipes, the settings and the loaders all ask it.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath

DEFAULT_FACTORY = "build_model"
PYTHON_SUFFIXES = (".py",)
YAML_SUFFIXES = (".yaml", ".yml")
CHECKPOINT_SUFFIXES = (".pt", ".pth")
ONNX_SUFFIXES = (".onnx",)
_FILE_SUFFIXES = (*PYTHON_SUFFIXES, *YAML_SUFFIXES, *CHECKPOINT_SUFFIXES, *ONNX_SUFFIXES)
_DRIVE = re.compile(r"[A-Za-z]:")
_DOTTED_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


class SourceKind(enum.Enum):
    REGISTRY = "registry name"
    MODULE = "pkg.module:factory"
    FILE = "path/to/file.py[:factory]"
    YAML = "model YAML"
    CHECKPOINT = "checkpoint"
    ONNX = "ONNX file"


@dataclass(frozen=True)
class ClassifiedSource:
    """`text` as `classify_source` read it: `location` is the module or file, `factory` the callable named after
    the ':' (None when none is named: a `.py` file then uses `DEFAULT_FACTORY`)."""

    kind: SourceKind
    text: str
    location: str
    factory: str | None = None

    @property
    def label(self) -> str:
        """The name a result gets before its model is built: the named factory, else the file's stem, else the text."""
        if self.factory:
            return self.factory
        return self.text if self.kind is SourceKind.REGISTRY else _stem(self.location)

    @property
    def callable_name(self) -> str:
        """The factory to call for a `MODULE` or `FILE` source."""
        return self.factory or DEFAULT_FACTORY

    @property
    def well_formed(self) -> bool:
        """For `MODULE` and `FILE`: something before the ':' and a dotted Python name (or nothing) after it."""
        return bool(self.location) and (self.factory is None or _DOTTED_NAME.fullmatch(self.factory) is not None)

    @property
    def is_file(self) -> bool:
        return self.kind in (SourceKind.FILE, SourceKind.YAML, SourceKind.CHECKPOINT, SourceKind.ONNX)


def _stem(location: str) -> str:
    windows = "\\" in location or _DRIVE.match(location) is not None
    return (PureWindowsPath(location) if windows else PurePosixPath(location)).stem


def _factory_split(text: str) -> tuple[str, str] | None:
    """(location, factory) when the part after the last ':' is a factory name, else None."""
    head, sep, tail = text.rpartition(":")
    if not sep or not head or not _DOTTED_NAME.fullmatch(tail) or tail.lower().endswith(_FILE_SUFFIXES):
        return None
    return head, tail


def classify_source(text: str) -> ClassifiedSource:
    """What `text` names. The rule, in order:

    1. A factory: the part after the LAST ':' is a dotted Python name (`build`, `Net.build`) that does
       not end in a file suffix, and something comes before the ':'. What comes before is a file
       (`FILE`) when it ends in `.py` or holds a `/` or `\\`, else an importable module (`MODULE`).
       So a Windows drive (`C:\\nets\\net.py`, `D:net.py`) is never read as a factory, and
       `C:\\nets\\net.py:build` is the file with its factory.
    2. Otherwise the suffix decides, in any case: `.py` a Python file whose factory is
       `build_model` (`FILE`), `.yaml`/`.yml` an ultralytics model YAML, `.pt`/`.pth` a
       checkpoint, `.onnx` an ONNX graph.
    3. Text that still holds a ':' is a malformed factory spec: `MODULE` with the parts as written
       (the loader refuses it, naming the rule).
    4. Anything else is a registry name (`REGISTRY`; an unknown one is refused where it is looked up).
    """
    split = _factory_split(text)
    if split is not None:
        location, factory = split
        is_file = location.lower().endswith(PYTHON_SUFFIXES) or "/" in location or "\\" in location
        return ClassifiedSource(SourceKind.FILE if is_file else SourceKind.MODULE, text, location, factory)
    lower = text.lower()
    for kind, suffixes in ((SourceKind.FILE, PYTHON_SUFFIXES), (SourceKind.YAML, YAML_SUFFIXES),
                           (SourceKind.CHECKPOINT, CHECKPOINT_SUFFIXES), (SourceKind.ONNX, ONNX_SUFFIXES)):
        if lower.endswith(suffixes):
            return ClassifiedSource(kind, text, text)
    if ":" in text:
        location, _, factory = text.rpartition(":")
        return ClassifiedSource(SourceKind.MODULE, text, location, factory)
    return ClassifiedSource(SourceKind.REGISTRY, text, text)


__all__ = ["CHECKPOINT_SUFFIXES", "DEFAULT_FACTORY", "ONNX_SUFFIXES", "YAML_SUFFIXES", "ClassifiedSource", "SourceKind",
           "classify_source"]

"""Export recipes: one TOML file says which model to export, how, and where.

    [model]
    source = "attndeploy.nets.host:build_host"   # pkg.module:factory or path/to/file.py:factory
    kwargs = { attn = "cbam", width = 32 }       # optional
    weights = "runs/host_cbam.pt"                # optional

    [export]
    input = [1, 3, 96, 96]                       # or "1x3x96x96"
    dynamic = true                               # optional, default true
    opset = 17                                   # optional, default 17
    exporter = "auto"                            # optional: auto | torchscript | dynamo
    precision = "fp32"                           # optional: fp32 | fp16
    out = "models/host_cbam"                     # optional, default models/<recipe name>

Relative paths (a ``.py`` source, weights, out) are taken from the current working
directory, as CLI arguments are. Every key is validated on load; a bad one raises
`UsageError` naming the key, the expected and the actual value (an unknown key also
suggests the closest known one).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attndeploy.errors import UsageError, require, unknown_name
from attndeploy.exporting.exporters import plan_exporters
from attndeploy.shapes import Shape, format_shape, parse_shape

PRECISIONS = ("fp32", "fp16")
SECTIONS = {"model": ("source", "kwargs", "weights"),
            "export": ("input", "dynamic", "opset", "exporter", "precision", "out")}


@dataclass(frozen=True)
class Recipe:
    """A validated recipe (`path`: the TOML file it came from, if any)."""

    name: str
    source: str
    input_shape: Shape
    kwargs: dict[str, Any] = field(default_factory=dict)
    weights: Path | None = None
    dynamic: bool = True
    opset: int = 17
    exporter: str = "auto"
    precision: str = "fp32"
    out_dir: Path = Path("models")
    path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "kwargs": dict(self.kwargs),
                "weights": str(self.weights) if self.weights else None, "input": format_shape(self.input_shape),
                "dynamic": self.dynamic, "opset": self.opset, "exporter": self.exporter,
                "precision": self.precision, "out": str(self.out_dir), "path": str(self.path) if self.path else None}


def typed_value(table: dict[str, Any], section: str, key: str, kind: type | tuple[type, ...], expected: str,
           default: Any) -> Any:
    if key not in table:
        return default
    value = table[key]
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    require(ok, f"recipe key [{section}].{key} has the wrong type", expected, f"{value!r} ({type(value).__name__})")
    return value


def _input_shape(value: Any) -> Shape:
    key = "recipe key [export].input"
    if isinstance(value, str):
        try:
            return parse_shape(value)
        except UsageError as err:
            raise UsageError(key + " must be a shape", "e.g. '1x3x224x224' or [1, 3, 224, 224]", repr(value)) from err
    require(isinstance(value, list) and len(value) >= 1 and all(isinstance(d, int) and not isinstance(d, bool)
                                                               and d > 0 for d in value),
            key + " must be a shape", "a list of positive ints, e.g. [1, 3, 224, 224]", repr(value))
    return tuple(value)


def parse_recipe(data: dict[str, Any], name: str, path: Path | None = None) -> Recipe:
    """Validate a parsed TOML document (see the module docstring) into a `Recipe` named `name`."""
    for section, table in data.items():
        if section not in SECTIONS:
            raise unknown_name("recipe section", section, SECTIONS)
        require(isinstance(table, dict), f"recipe section [{section}] must be a table",
                f"[{section}] with keys", type(table).__name__)
        for key in table:
            if key not in SECTIONS[section]:
                raise unknown_name(f"key in recipe section [{section}]", key, SECTIONS[section])
    model, export = data.get("model", {}), data.get("export", {})
    require("source" in model, "recipe key [model].source is required", "'pkg.module:factory' or "
            "'path/to/file.py:factory'", "no [model].source")
    require("input" in export, "recipe key [export].input is required", "e.g. [1, 3, 224, 224]", "no [export].input")
    source = typed_value(model, "model", "source", str, "a string 'pkg.module:factory'", None)
    require(source.strip() != "", "recipe key [model].source must not be empty", "'pkg.module:factory'", repr(source))
    kwargs = typed_value(model, "model", "kwargs", dict, "a table, e.g. { attn = 'cbam' }", {})
    weights = typed_value(model, "model", "weights", str, "a path string", None)
    exporter = typed_value(export, "export", "exporter", str, "auto, torchscript or dynamo", "auto")
    opset = typed_value(export, "export", "opset", int, "an int, e.g. 17", 17)
    plan_exporters(exporter, opset)  # raises UsageError for an unknown exporter or an opset it cannot write
    precision = typed_value(export, "export", "precision", str, " or ".join(PRECISIONS), "fp32")
    require(precision in PRECISIONS, "recipe key [export].precision must be a known precision",
            "one of " + ", ".join(PRECISIONS), repr(precision))
    out = typed_value(export, "export", "out", str, "a folder path", None)
    return Recipe(
        name=name, source=source, input_shape=_input_shape(export["input"]), kwargs=dict(kwargs),
        weights=Path(weights) if weights else None,
        dynamic=typed_value(export, "export", "dynamic", bool, "true or false", True), opset=opset, exporter=exporter,
        precision=precision, out_dir=Path(out) if out else Path("models") / name, path=path)


def read_toml(path: Path) -> dict[str, Any]:
    """The TOML document at `path`; `UsageError` for a missing file or invalid TOML."""
    require(path.is_file(), "the recipe file must exist", "an existing .toml file", str(path))
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"the recipe {str(path)!r} is not valid TOML", "a TOML document", str(err)) from err


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate the TOML recipe at `path`; its name is the file's stem."""
    path = Path(path).expanduser()
    return parse_recipe(read_toml(path), path.stem, path)

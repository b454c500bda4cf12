"""A model YAML checked before ultralytics reads it, and ultralytics' build errors as one line.

    check_model_yaml(Path("yolov8n-cbam.yaml"))    # UsageError unless it has 'backbone' and 'head' layer lists
    with yaml_build_errors("yolov8n-cbam.yaml", classes, custom_modules):
        wrapper = YOLO("yolov8n-cbam.yaml")

Ultralytics' parser (`ultralytics.nn.tasks.parse_model`) walks `backbone + head`, each layer
`[from, repeats, module, args]`; a file without them gets an ultralytics warning and a
`KeyError: 'backbone'` that reads like an unknown module. `check_model_yaml` reads the
file with bounds (a regular file of at most `MAX_YAML_BYTES`, `yaml.safe_load`: no tag
runs code) and names what is missing. A bare name ultralytics ships (`yolov8n.yaml`, no
such local file) is left to ultralytics.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from attndeploy.errors import UsageError, first_line, require
from attndeploy.reading import require_regular_file

MAX_YAML_BYTES = 1 << 20  # a model YAML is a few KiB
YAML_SECTIONS = ("backbone", "head")
LAYER = "[from, repeats, module, args]"


def _layers(cfg: Mapping[str, Any], section: str, name: str) -> None:
    layers = cfg[section]
    require(isinstance(layers, list) and len(layers) > 0, f"a model YAML's {section!r} is a list of layers",
            f"a non-empty list of {LAYER}", f"{type(layers).__name__} {str(layers)[:80]!r} in {name}")
    for i, layer in enumerate(layers):
        require(isinstance(layer, list) and len(layer) == 4 and isinstance(layer[2], str),
                f"every layer of a model YAML is {LAYER}", "a list of 4 with the module's name third",
                f"{section}[{i}] = {str(layer)[:80]} in {name}")


def check_model_yaml(path: Path) -> None:
    """`UsageError` unless the local model YAML at `path` has `backbone` and `head` lists of layers (see above)."""
    if not path.exists() and path.name == str(path):
        return  # a name ultralytics resolves in its own cfg/models
    require_regular_file(path, "the model YAML", "a .yaml file")
    size = path.stat().st_size
    require(size <= MAX_YAML_BYTES, "a model YAML must be small", f"at most {MAX_YAML_BYTES} bytes",
            f"{size} bytes in {path}")
    import yaml

    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8", errors="replace"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or first_line(err)
        raise UsageError("the model YAML must be valid YAML", "a YAML mapping", f"{path.name}: {problem}{where}"
                         ) from err
    require(isinstance(cfg, dict), "a model YAML is a mapping", f"keys {', '.join(YAML_SECTIONS)} (and nc, scales)",
            f"{type(cfg).__name__} in {path.name}")
    missing = [s for s in YAML_SECTIONS if s not in cfg]
    require(not missing, "a model YAML needs its layer lists", f"{' and '.join(map(repr, YAML_SECTIONS))}: lists of "
            f"{LAYER}", f"no {' or '.join(map(repr, missing))} in {path.name} (keys: "
            f"{', '.join(map(str, list(cfg)[:8])) or 'none'})", "see ultralytics/cfg/models for examples")
    for section in YAML_SECTIONS:
        _layers(cfg, section, path.name)


@contextlib.contextmanager
def yaml_build_errors(name: str, classes: Mapping[str, type], custom_modules: Path | None) -> Iterator[None]:
    """Ultralytics' errors while building the YAML `name` as one-line `UsageError`s (a `UsageError` passes)."""
    try:
        yield
    except UsageError:
        raise
    except KeyError as err:
        where = f" from {custom_modules}" if custom_modules else ""
        raise UsageError(f"{name} names a module ultralytics' YAML parser does not know",
                         f"an ultralytics layer or a class given with --custom-modules FILE.py{where}", first_line(err),
                         f"known custom classes: {', '.join(sorted(classes)) or 'none'}") from err
    except FileNotFoundError as err:
        raise UsageError("the model YAML must exist", "an existing .yaml file, or the name of one ultralytics ships",
                         name) from err
    except Exception as err:
        raise UsageError(f"ultralytics cannot build {name}", "a model YAML it accepts",
                         first_line(err, with_type=True)) from err


__all__ = ["MAX_YAML_BYTES", "YAML_SECTIONS", "check_model_yaml", "yaml_build_errors"]

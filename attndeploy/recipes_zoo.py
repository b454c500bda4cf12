"""Zoo recipes: export many registry modules with one setting, e.g. the whole registry.

    # export/zoo.toml
    [zoo]
    modules = "all"          # or a list of registry names: ["se", "cbam"]
    opset = 17               # optional, default 17
    dynamic = true           # optional, default true
    out = "models"           # optional, default "models": <out>/<name>/<name>.onnx + report.json
    exporter = "auto"        # optional: auto | torchscript | dynamo
    seed = 0                 # optional: seed of the random weights and parity inputs

`export_zoo(load_zoo_recipe("export/zoo.toml"))` exports each module as
`attndeploy export NAME` would (same files, same checks), with a progress bar on stderr
and a summary line at the end. Single-model recipes (`[model]` / `[export]`) are read by
`attndeploy.recipes`; `load_any_recipe` picks the reader from the file's tables.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attndeploy.errors import CheckFailed, UsageError, first_line, require, unknown_name
from attndeploy.recipes import parse_recipe, read_toml, typed_value

if TYPE_CHECKING:
    from attndeploy.exporting.result import ExportResult
    from attndeploy.recipes import Recipe

ZOO_KEYS = ("modules", "opset", "dynamic", "out", "exporter", "seed")
Log = Callable[[str], None]


@dataclass(frozen=True)
class ZooRecipe:
    """A validated zoo recipe: `modules` are registry names (already checked)."""

    modules: tuple[str, ...]
    opset: int = 17
    dynamic: bool = True
    out_dir: Path = Path("models")
    exporter: str = "auto"
    seed: int = 0
    path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"modules": list(self.modules), "opset": self.opset, "dynamic": self.dynamic, "out": str(self.out_dir),
                "exporter": self.exporter, "seed": self.seed, "path": str(self.path) if self.path else None}


class ZooExportFailed(CheckFailed):
    """Some modules could not be exported; `results` holds the ones that were, `failures` name -> reason."""

    def __init__(self, message: str, results: list[ExportResult], failures: dict[str, str]) -> None:
        super().__init__(message)
        self.results, self.failures = results, failures


def _modules(value: Any) -> tuple[str, ...]:
    from attndeploy.registry import get_spec, list_modules

    if value == "all":
        return tuple(list_modules())
    require(isinstance(value, list) and len(value) > 0 and all(isinstance(v, str) for v in value),
            "recipe key [zoo].modules must be \"all\" or a list of registry names", '"all" or ["se", "cbam"]',
            repr(value))
    for name in value:
        get_spec(name)  # unknown: lists the valid ones and suggests the closest
    return tuple(dict.fromkeys(value))


def parse_zoo_recipe(data: dict[str, Any], path: Path | None = None) -> ZooRecipe:
    """Validate a parsed TOML document with a `[zoo]` table into a `ZooRecipe` (`UsageError` names a bad key)."""
    from attndeploy.exporting.exporters import plan_exporters

    for section in data:
        if section != "zoo":
            raise unknown_name("section in a zoo recipe", section, ["zoo"])
    zoo = data.get("zoo")
    if not isinstance(zoo, dict):
        raise UsageError("a zoo recipe needs a [zoo] table", "[zoo] with modules = \"all\" or [names]",
                         type(zoo).__name__ if zoo is not None else "no [zoo] table")
    for key in zoo:
        if key not in ZOO_KEYS:
            raise unknown_name("key in recipe section [zoo]", key, ZOO_KEYS)
    require("modules" in zoo, "recipe key [zoo].modules is required", '"all" or a list of names', "no modules key")
    opset = typed_value(zoo, "zoo", "opset", int, "an int, e.g. 17", 17)
    exporter = typed_value(zoo, "zoo", "exporter", str, "auto, torchscript or dynamo", "auto")
    plan_exporters(exporter, opset)  # an unknown exporter, or an opset it cannot write
    out = typed_value(zoo, "zoo", "out", str, "a folder path", "models")
    require(out.strip() != "", "recipe key [zoo].out must not be empty", "a folder path", repr(out))
    return ZooRecipe(_modules(zoo["modules"]), opset, typed_value(zoo, "zoo", "dynamic", bool, "true or false", True),
                     Path(out), exporter, typed_value(zoo, "zoo", "seed", int, "an int", 0), path)


def load_zoo_recipe(path: str | Path) -> ZooRecipe:
    """Read and validate the zoo recipe at `path`."""
    path = Path(path).expanduser()
    return parse_zoo_recipe(read_toml(path), path)


def is_zoo_recipe(path: str | Path) -> bool:
    """True when the TOML file at `path` has a `[zoo]` table (bad files raise `UsageError`)."""
    return "zoo" in read_toml(Path(path).expanduser())


def load_any_recipe(path: str | Path) -> ZooRecipe | Recipe:
    """A `ZooRecipe` for a file with `[zoo]`, else a single-model `attndeploy.recipes.Recipe`."""
    path = Path(path).expanduser()
    data = read_toml(path)
    return parse_zoo_recipe(data, path) if "zoo" in data else parse_recipe(data, path.stem, path)


def export_zoo(recipe: ZooRecipe, log: Log | None = None, progress: bool = True) -> list[ExportResult]:
    """Export every module of `recipe` to `<out>/<name>/<name>.onnx` with `<out>/<name>/report.json`.

    Each module as `attndeploy export NAME --opset O [--static] --out <out>/<name>` does it
    (random weights from `seed`, the example shape, parity at the sweep when dynamic).
    A progress bar goes to stderr; `log` gets one line per failure and the summary line.
    Returns the results (check `.passed`: a parity failure is a result, its file kept as
    `.rejected.onnx`); raises `ZooExportFailed` after the last module when any module
    could not be exported at all, and `UsageError` before the first if `out` is not writable.
    """
    from tqdm import tqdm

    from attndeploy.bench.quiet import quiet
    from attndeploy.exporting.pipeline import export
    from attndeploy.fileio import ensure_writable_dir, write_json_atomic

    log = log or (lambda _msg: None)
    ensure_writable_dir(recipe.out_dir)
    start = time.perf_counter()
    results: list[ExportResult] = []
    failures: dict[str, str] = {}
    with tqdm(total=len(recipe.modules), desc="zoo", unit="module", file=sys.stderr, disable=not progress) as bar:
        for name in recipe.modules:
            bar.set_postfix_str(name)
            out_dir = recipe.out_dir / name
            try:
                with quiet() as captured:
                    res = export(name, None, out_dir / f"{name}.onnx", opset=recipe.opset, dynamic=recipe.dynamic,
                                 exporter=recipe.exporter, seed=recipe.seed, name=name)
            except (CheckFailed, UsageError) as err:
                failures[name] = first_line(err)
                bar.write(f"zoo: {name} failed: {failures[name]}" + (f"\n{captured.tail(5)}" if captured.text else ""),
                          file=sys.stderr)
                bar.update()
                continue
            write_json_atomic(out_dir / "report.json", res.to_dict())
            results.append(res)
            if not res.passed:
                log(f"zoo: {name} failed parity: {res.parity.failure_message()}")
            bar.update()
    for name, reason in failures.items():
        log(f"zoo: {name} not exported: {reason}")
    passed = sum(r.passed for r in results)
    log(f"zoo: {passed}/{len(recipe.modules)} modules exported and passed parity in "
        f"{time.perf_counter() - start:.1f} s (opset {recipe.opset}, {'dynamic' if recipe.dynamic else 'static'}, "
        f"{recipe.out_dir}/<name>/<name>.onnx)")
    if failures:
        raise ZooExportFailed(f"{len(failures)} of {len(recipe.modules)} modules could not be exported: "
                              + "; ".join(f"{n}: {r}" for n, r in failures.items()), results, failures)
    return results


__all__ = ["ZooExportFailed", "ZooRecipe", "export_zoo", "is_zoo_recipe", "load_any_recipe", "load_zoo_recipe",
           "parse_zoo_recipe"]

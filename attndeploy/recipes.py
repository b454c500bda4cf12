"""Export recipes: one TOML reader, one schema, for one model or many; each entry becomes `ExportSettings`.

One model (`export/host_cbam.toml`)::

    [model]
    source = "attndeploy.nets.host:build_host"   # pkg.module:factory, path/to/file.py:factory, or a registry name
    kwargs = { attn = "cbam", width = 32 }       # optional
    weights = "runs/host_cbam.pt"                # optional

    [export]
    input = [1, 3, 96, 96]                       # or "1x3x96x96"
    out = "models/host_cbam"                     # optional, default models/<recipe name>

Many registry modules (`export/zoo.toml`), each to `<out>/<name>/<name>.onnx`::

    [zoo]
    modules = "all"                              # or ["se", "cbam"]
    out = "models"                               # optional

Both take the same export keys (in `[export]`, or in `[zoo]` beside `modules`); `[model]` also
takes the model's own (`name`, `kwargs`, `weights`, `custom_modules`, `trust_checkpoint`). The
keys are those declared in `attndeploy.settings` (each option's `recipe`), checked by the same
checks as the API and the CLI: `input`, `imgsz`, `batch`, `opset`, `dynamic`, `exporter`,
`precision`, `calib`, `keep_fp32`, `parity_shapes`, `inputs`, `atol`, `rtol`, `backends`,
`nms`, ..., and `engine = true` or a table of engine options
(`engine = { max = [4, 3, 640, 640], workspace_mb = 4096 }`). Each entry writes `report.json`
beside its model. Relative paths are taken from the current folder, as CLI arguments are. A bad
key raises `UsageError` naming it (an unknown one suggests the closest); every folder a recipe
writes is checked before any export.
"""

from __future__ import annotations

import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from attndeploy.errors import CheckFailed, UsageError, first_line, require, unknown_name
from attndeploy.pipeline import run_pipeline
from attndeploy.pipeline.result import ExportResult
from attndeploy.pipeline.run import Log
from attndeploy.quiet import quiet
from attndeploy.registry import get_spec, list_modules
from attndeploy.options import Option, declared
from attndeploy.settings import ExportSettings
from attndeploy.source_kind import SourceKind, classify_source


def recipe_options(section: str) -> dict[str, Option]:
    """{recipe key: option} of a `[model]` or `[export]` table, from the declarations."""
    return {str(o.recipe_key()): o for o in declared(ExportSettings) if o.recipe and o.recipe_section() == section}


MODEL_KEYS = tuple(recipe_options("model"))
EXPORT_KEYS = tuple(recipe_options("export"))   # `out` among them: the folder (out_dir's key)
SECTIONS = {"model": MODEL_KEYS, "export": EXPORT_KEYS, "zoo": ("modules", *EXPORT_KEYS)}


@dataclass(frozen=True)
class Recipe:
    """A validated recipe: `jobs` in order (one for `[model]`, one per module for `[zoo]`)."""

    path: Path | None
    kind: str                       # "model" or "zoo"
    jobs: tuple[ExportSettings, ...]


def read_toml(path: Path) -> dict[str, Any]:
    """The TOML document at `path`; `UsageError` for a missing file or invalid TOML."""
    require(path.is_file(), "the recipe file must exist", "an existing .toml file", str(path))
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"the recipe {str(path)!r} is not valid TOML", "a TOML document", str(err)) from err


def _options(table: dict[str, Any], section: str) -> dict[str, Any]:
    """ExportSettings options from a table's keys, each checked as read (the message names `[section].key`)."""
    known = recipe_options("model" if section == "model" else "export")
    options: dict[str, Any] = {}
    for key, value in table.items():
        opt = known.get(key)
        if opt is None or key == "out":  # `modules`; the folder is placed per entry
            continue
        label = f"recipe key [{section}].{key}"
        options[opt.name] = opt.check(value, label) if opt.check is not None else value
    return options


def _settings(key: str, **options: Any) -> ExportSettings:
    try:
        return ExportSettings.create(**options)
    except UsageError as err:
        raise UsageError(f"recipe {key}: {err.rule}", err.expected, err.actual, err.hint) from err


def _check_sections(data: dict[str, Any]) -> str:
    for section, table in data.items():
        if section not in SECTIONS:
            raise unknown_name("recipe section", section, SECTIONS)
        require(isinstance(table, dict), f"recipe section [{section}] must be a table", f"[{section}] with keys",
                type(table).__name__)
        for key in table:
            if key not in SECTIONS[section]:
                raise unknown_name(f"key in recipe section [{section}]", key, SECTIONS[section])
    require(("zoo" in data) != ("model" in data), "a recipe has either a [model] or a [zoo] table",
            "[model] (+ [export]) for one model, [zoo] for registry modules", ", ".join(f"[{s}]" for s in data) or
            "no tables")
    require("zoo" not in data or "export" not in data, "a [zoo] recipe keeps its export keys in [zoo]",
            "[zoo] alone", "[zoo] and [export]")
    return "zoo" if "zoo" in data else "model"


def _folder(table: dict[str, Any], section: str, default: Path) -> Path:
    """The table's `out` folder (checked as `ExportSettings.out_dir` is: writable, before any export)."""
    out = table.get("out", None)
    if out is None:
        return default
    folder = recipe_options("export")["out"]
    assert folder.check is not None
    return Path(folder.check(out, f"recipe key [{section}].out"))


def _modules(value: Any) -> tuple[str, ...]:
    if value == "all":
        return tuple(list_modules())
    require(isinstance(value, list) and len(value) > 0 and all(isinstance(v, str) for v in value),
            "recipe key [zoo].modules must be \"all\" or a list of registry names", '"all" or ["se", "cbam"]',
            repr(value))
    for name in value:
        get_spec(name)  # unknown: lists the valid ones and suggests the closest
    return tuple(dict.fromkeys(value))


def parse_recipe(data: dict[str, Any], name: str, path: Path | None = None) -> Recipe:
    """Validate a parsed TOML document into a `Recipe`; `name` names a `[model]` recipe's files."""
    if _check_sections(data) == "zoo":
        zoo = data["zoo"]
        require("modules" in zoo, "recipe key [zoo].modules is required", '"all" or a list of names', "no modules key")
        root, options = _folder(zoo, "zoo", Path("models")), _options(zoo, "zoo")
        jobs = tuple(_settings(f"[zoo] {m}", source=m, out_path=root / m / f"{m}.onnx", name=m, report=True,
                               **options) for m in _modules(zoo["modules"]))
        return Recipe(path, "zoo", jobs)
    model, export = data["model"], data.get("export", {})
    require("source" in model, "recipe key [model].source is required",
            "'pkg.module:factory', 'path/to/file.py:factory' or a registry name", "no [model].source")
    options = {**_options(model, "model"), **_options(export, "export")}
    source = options["source"]
    needs_input = isinstance(source, str) and classify_source(source).kind not in (
        SourceKind.REGISTRY, SourceKind.YAML, SourceKind.CHECKPOINT)
    require("example" in options or not needs_input, "recipe key [export].input is required",
            "e.g. [1, 3, 224, 224] (registry names and detector YAMLs have a default)", "no [export].input")
    name = options.pop("name", name)
    folder = _folder(export, "export", Path("models") / name)
    job = _settings("[model]", name=name, out_path=folder / f"{name}.onnx", report=True, **options)
    return Recipe(path, "model", (job,))


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate the TOML recipe at `path`; a `[model]` recipe's files are named after the file's stem."""
    path = Path(path).expanduser()
    return parse_recipe(read_toml(path), path.stem, path)


class RecipeFailed(CheckFailed):
    """Some entries could not be exported; `results` holds the ones that were, `failures` name -> reason."""

    def __init__(self, message: str, results: list[ExportResult], failures: dict[str, str]) -> None:
        super().__init__(message)
        self.results, self.failures = results, failures


def run_recipe(recipe: Recipe, log: Log | None = None, progress: bool = True) -> list[ExportResult]:
    """Export every entry through the pipeline, each writing its model and `report.json`.

    A `[model]` recipe raises what its export raises. A `[zoo]` recipe goes on past a
    module that cannot be exported, with a progress bar on stderr and its library chatter
    kept quiet; it raises `RecipeFailed` after the last module when any could not be
    exported. A parity failure is a result (check `.passed`), its file kept as `.rejected.onnx`.
    """
    log = log or (lambda _msg: None)
    if recipe.kind == "model":
        return [run_pipeline(recipe.jobs[0], log)]
    start = time.perf_counter()
    results: list[ExportResult] = []
    failures: dict[str, str] = {}
    with tqdm(total=len(recipe.jobs), desc="zoo", unit="module", file=sys.stderr, disable=not progress) as bar:
        for job in recipe.jobs:
            name = str(job.name)
            bar.set_postfix_str(name)
            try:
                with quiet() as captured:
                    res = run_pipeline(job)
            except (CheckFailed, UsageError) as err:
                failures[name] = first_line(err)
                bar.write(f"zoo: {name} failed: {failures[name]}" + (f"\n{captured.tail(5)}" if captured.text else ""),
                          file=sys.stderr)
            else:
                results.append(res)
                if not res.passed:
                    log(f"zoo: {name} failed parity: {res.parity.failure_message()}")
            bar.update()
    for name, reason in failures.items():
        log(f"zoo: {name} not exported: {reason}")
    first = recipe.jobs[0]
    log(f"zoo: {sum(r.passed for r in results)}/{len(recipe.jobs)} modules exported and passed parity in "
        f"{time.perf_counter() - start:.1f} s (opset {first.opset}, {'dynamic' if first.dynamic else 'static'})")
    if failures:
        raise RecipeFailed(f"{len(failures)} of {len(recipe.jobs)} modules could not be exported: "
                           + "; ".join(f"{n}: {r}" for n, r in failures.items()), results, failures)
    return results

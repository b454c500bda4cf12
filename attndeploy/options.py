"""Each export option declared once, as a settings field: type, default, help, group, check, CLI flag, recipe key.

    opset: int = option(17, "ONNX opset", group="export", check=check.opset, flag="--opset", parse=parse_int,
                        recipe="opset")

The field's name is the API keyword (`attndeploy.export(..., opset=18)`), its annotation the
type. From these declarations come the `attndeploy export` parser (`attndeploy.cli.export_options`),
the TOML recipe schema (`attndeploy.recipes`) and the checks `ExportSettings` runs once. A field
without a CLI flag or recipe key says why in `exempt`. Relations between options are declared
too: `needs` (the option is used only when another takes certain values: `--calib` with
`--precision int8`), `excludes` (the two cannot be given together: `--imgsz` and `--input`).

A leaf module: no torch, so the CLI's parser is built without it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from attndeploy.errors import UsageError

OPTION_KEY = "attndeploy.option"
Check = Callable[[Any, str], Any]   # (value, label) -> the normalised value; UsageError naming `label`
Parse = Callable[[str, str], Any]   # (CLI text, flag) -> the value, before its check
GROUPS = {  # the CLI's help sections, in order
    "model": "the model", "family": "detectors and other model families", "export": "export",
    "parity": "parity", "precision": "reduced precision (verified in onnxruntime against eager fp32)",
    "nms": "detector outputs (ultralytics' names)", "engine": "TensorRT engine (needs TensorRT and an NVIDIA GPU)",
    "output": "output",
}


@dataclass(frozen=True)
class Needs:
    """The option is used only when `option` (an API name) takes one of `values`; () means any but its default."""

    option: str
    values: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Option:
    """One declared option; `name` and `default` come from its field (see `declared`)."""

    help: str
    group: str
    check: Check | None = None
    flag: str | None = None             # CLI: "--opset"; a bool's flag sets True; no dash: a positional
    off_flag: str | None = None         # CLI, bools: the flag that sets False ("--no-simplify", "--static")
    parse: Parse | None = None          # CLI text -> value (default: the text itself)
    metavar: str | None = None
    words: Mapping[str, Any] | None = None   # CLI words for API values ({"embed": True, "free": False})
    repeat: bool = False                # CLI: given once per value (--plugin A --plugin B)
    recipe: str | None = None           # recipe key; "model.source" lives in [model], others in [export] / [zoo]
    exempt: str = ""                    # why a flag or a recipe key is missing
    needs: Needs | None = None
    excludes: tuple[str, ...] = ()      # options (API names) that cannot be given with this one
    nested: type | None = None          # a settings class whose own options this one switches on (engine)
    name: str = ""
    default: Any = None

    @property
    def is_bool(self) -> bool:
        return isinstance(self.default, bool)

    @property
    def flags(self) -> tuple[str, ...]:
        return tuple(f for f in (self.flag, self.off_flag) if f)

    def spell(self, value: Any) -> str:
        """How the CLI says this option has `value` (`--static`, `--precision fp16`, `--nms embed`)."""
        if self.is_bool or self.nested is not None:
            shown = self.flag if value else self.off_flag or f"no {self.flag}"
            return str(shown)
        for word, meant in (self.words or {}).items():
            if meant is value or (meant == value and type(meant) is type(value)):
                return f"{self.flag} {word}"
        return f"no {self.flag}" if value is None else f"{self.flag} {value}"

    def say(self, value: Any) -> str:
        """How the Python API says it (`dynamic=False`)."""
        return f"{self.name}={value!r}"

    def recipe_section(self) -> str:
        return "model" if (self.recipe or "").startswith("model.") else "export"

    def recipe_key(self) -> str | None:
        return None if self.recipe is None else self.recipe.split(".", 1)[-1]


def option(default: Any = None, help: str = "", *, factory: Callable[[], Any] | None = None, **declared: Any) -> Any:
    """A settings field declaring one option (see the module docstring); `factory` for a mutable default."""
    meta = {OPTION_KEY: Option(help, **declared)}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


_DECLARED: dict[type, tuple[Option, ...]] = {}


def declared(cls: type) -> tuple[Option, ...]:
    """The options of the settings dataclass `cls`, in field order, with their names and defaults."""
    if cls not in _DECLARED:
        _DECLARED[cls] = _read_declarations(cls)
    return _DECLARED[cls]


def _read_declarations(cls: type) -> tuple[Option, ...]:
    found = []
    for f in dataclasses.fields(cls):
        opt = f.metadata.get(OPTION_KEY)
        if opt is None:
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        found.append(dataclasses.replace(opt, name=f.name, default=None if default is dataclasses.MISSING else default))
    return tuple(found)


def by_name(cls: type) -> dict[str, Option]:
    return {o.name: o for o in declared(cls)}


def check_fields(settings: Any) -> None:
    """Every declared field of `settings` (a frozen dataclass) through its check, normalised in place."""
    for opt in declared(type(settings)):
        if opt.check is not None:
            object.__setattr__(settings, opt.name, opt.check(getattr(settings, opt.name), opt.name))


def _differs(value: Any, default: Any) -> bool:
    return value is not default and (type(value) is not type(default) or value != default)


def given_names(settings: Any) -> set[str]:
    """The options of `settings` that differ from their defaults (what the API can tell was asked for)."""
    return {o.name for o in declared(type(settings)) if _differs(getattr(settings, o.name), o.default)}


Spell = Callable[[Option, Any], str]


def check_relations(options: Iterable[Option], given: Iterable[str], values: Mapping[str, Any],
                    spell: Spell) -> None:
    """`UsageError` for the first given option whose `needs` are unmet or which an `excludes` rules out.

    `values` holds the effective value of every option; `spell(option, value)` says one in the
    caller's terms (a CLI flag or an API keyword), and a bare `spell(option, ...)` the option itself.
    """
    table = {o.name: o for o in options}
    given = set(given)
    for opt in table.values():
        if opt.name not in given:
            continue
        for other_name in opt.excludes:
            if other_name in given:
                other = table[other_name]
                raise UsageError(f"{spell(opt, ...)} and {spell(other, ...)} cannot be given together",
                                 f"{spell(opt, ...)} or {spell(other, ...)}", "both")
        if opt.needs is None:
            continue
        other = table[opt.needs.option]
        actual = values.get(other.name, other.default)
        allowed = opt.needs.values
        if (actual in allowed and actual is not None) if allowed else _differs(actual, other.default):
            continue
        wanted = " or ".join(spell(other, v) for v in allowed) if allowed else spell(other, ...)
        raise UsageError(f"{spell(opt, ...)} is used only with {wanted}", f"{wanted} with {spell(opt, ...)}",
                         f"{spell(opt, ...)} with {spell(other, actual)}"
                         + (" (the default)" if actual is not None and not _differs(actual, other.default) else ""))


def cli_spelling(opt: Option, value: Any) -> str:
    """`Spell` in CLI terms: the option's flag, or `Option.spell(value)`."""
    return (opt.flag or opt.off_flag or opt.name) if value is ... else opt.spell(value)


def api_spelling(opt: Option, value: Any) -> str:
    """`Spell` in Python terms: the keyword, or `keyword=value`."""
    return opt.name if value is ... else opt.say(value)


__all__ = ["GROUPS", "OPTION_KEY", "Check", "Needs", "Option", "Parse", "api_spelling", "by_name", "check_fields",
           "check_relations", "cli_spelling", "declared", "given_names", "option"]
